// Motion: a pulse runs through the stages in pipeline order, paced by the step's measured
// stage times, then the emitted token flies back into the input. One requestAnimationFrame
// loop moves one dot (and, at the end, one chip); each frame changes a few attributes only.
import { G, blockX } from './layout.js';

export const STEP_MS = 1100; // the measured stages of one step, stretched to this at 1×
export const MIN_STAGE_MS = 120; // so that a stage of 0.1 ms can still be seen
export const FLIGHT_MS = 450; // the emitted token's way back to the input

export const reducedMotion = () => window.matchMedia('(prefers-reduced-motion: reduce)').matches;

// -> {segments: [{stage, layer?, ms, from, to, flight?}], realMs, slower}
export function timeline(ov, geo, { reduced = false } = {}) {
  const t = ov.timings_ms;
  const L = ov.layers.length;
  // a speculative step's draft is proposed before the pass: it is shown with the input
  const real = {
    tokenization: t.draft || 0,
    embedding: t.embed || 0,
    attention: t.attention || 0,
    feedforward: t.feedforward || 0,
    prediction: t.prediction || 0,
    sampling: t.sampling || 0,
  };
  const realMs = Object.values(real).reduce((a, b) => a + b, 0);
  const k = realMs > 0 ? STEP_MS / realMs : 1;
  const scaled = (ms) => Math.max(MIN_STAGE_MS, ms * k);
  const chipEnd = { x: G.chipX + G.chipW, y: geo.fedY };
  const streamIn = { x: G.stripX + 104, y: G.residY };
  const segments = [
    { stage: 'tokenization', ms: scaled(real.tokenization), from: { x: G.chipX + 12, y: geo.fedY }, to: chipEnd },
    { stage: 'embedding', ms: scaled(real.embedding), from: chipEnd, to: streamIn },
  ];
  let x = streamIn.x;
  for (let i = 0; i < L; i += 1) {
    const b = blockX(i, L);
    segments.push({
      stage: 'attention',
      layer: i,
      ms: (real.attention * k) / L,
      from: { x, y: G.residY },
      to: { x: b.cx, y: G.residY },
    });
    segments.push({
      stage: 'feedforward',
      layer: i,
      ms: (real.feedforward * k) / L,
      from: { x: b.cx, y: G.residY },
      to: { x: b.cx + b.pitch / 2, y: G.residY },
    });
    x = b.cx + b.pitch / 2;
  }
  const bars = { x: G.barX, y: G.barsY + 10 };
  const u = { x: G.sampX + G.sampW / 2, y: geo.uY };
  segments.push({ stage: 'prediction', ms: scaled(real.prediction), from: { x, y: G.residY }, to: bars });
  segments.push({ stage: 'sampling', ms: scaled(real.sampling), from: bars, to: u });
  if (!reduced) segments.push({ stage: 'sampling', flight: true, ms: FLIGHT_MS, from: u, to: u });
  return { segments, realMs, slower: k };
}

// Plays one timeline at a time; `speed` may change while it plays.
export class Player {
  constructor(hooks) {
    this.hooks = hooks; // {enter(seg, i), frame(seg, f), end(completed)}
    this.speed = 1;
    this.raf = 0;
    this.done = null;
  }

  get running() {
    return this.raf !== 0;
  }

  play(segments) {
    this.cancel();
    const ends = [];
    segments.reduce((a, s) => {
      ends.push(a + s.ms);
      return a + s.ms;
    }, 0);
    let elapsed = 0;
    let cur = -1;
    let last = null;
    return new Promise((resolve) => {
      this.done = resolve;
      const frame = (now) => {
        // a long frame (a busy CPU) advances the picture at most 100 ms, so no stage is lost
        elapsed += last === null ? 0 : Math.min(100, now - last) * this.speed;
        last = now;
        while (cur < segments.length - 1 && (cur < 0 || elapsed >= ends[cur])) {
          cur += 1;
          this.hooks.enter(segments[cur], cur); // every stage is entered, in order
        }
        if (elapsed >= ends[segments.length - 1]) {
          this.finish(true);
          return;
        }
        const s = segments[cur];
        this.hooks.frame(s, s.ms > 0 ? 1 - (ends[cur] - elapsed) / s.ms : 1);
        this.raf = requestAnimationFrame(frame);
      };
      this.raf = requestAnimationFrame(frame);
    });
  }

  finish(completed) {
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    const done = this.done;
    this.done = null;
    this.hooks.end(completed);
    if (done) done(completed);
  }

  cancel() {
    if (this.raf) this.finish(false);
  }
}

export const lerp = (a, b, f) => ({ x: a.x + (b.x - a.x) * f, y: a.y + (b.y - a.y) * f });
