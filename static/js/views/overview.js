// The overview: the whole pipeline of one step in one animated picture (issue 8).
// View contract: load(ctx) fetches the step's overview JSON, render(container, data) draws
// it in place. show(ctx) is what the page calls whenever a step is shown or streams in: it
// keeps up with the newest step without ever holding up the token stream (one request per
// step shown, never one per step computed), and settled() says when the motion is over.
import * as api from '../api.js';
import { $, el, fmtMs } from '../dom.js';
import { SEL } from '../selectors.js';
import { update, markSelection } from '../overview/draw.js';
import { G, build } from '../overview/layout.js';
import { Player, lerp, reducedMotion, timeline } from '../overview/motion.js';
import { setAttrs, toggle, tokenLabel, pct } from '../overview/svg.js';

const SPEEDS = [0.25, 0.5, 1, 2, 4]; // the motion's speed, relative to a step of about 2 s
let box = null; // {container, narration, legend, speed, replay}
let refs = null;
let current = null; // {data, geo, key, layer}
let lastCtx = null;
let pending = null;
let pumping = false; // a loop is loading, drawing and moving the pending steps
let lit = null; // the block half the pulse is in
let waiters = [];
let seenRun = null;
const player = new Player({ enter, frame, end });

// -- the view contract ---------------------------------------------------------------------

export async function load(ctx) {
  const ov = await api.detail(ctx.run.id, `${ctx.stepIndex}/overview?layer=${ctx.layer}`);
  return {
    ov,
    lanes: lanesOf(ctx.run, ctx.stepIndex),
    stage: ctx.stage,
    layer: ctx.layer,
    key: `${ctx.run.id}/${ctx.stepIndex}`,
    last: ctx.run.done && ctx.stepIndex === ctx.run.steps.length - 1,
  };
}

export function render(container, data) {
  performance.mark('overview-update-start');
  if (!refs || refs.nLayers !== data.ov.layers.length || !container.contains(refs.root)) {
    refs = build(container, data.ov.layers.length);
    bindPicture(refs);
  }
  const geo = update(refs, data);
  setAttrs(refs.root, { 'data-step': data.ov.step });
  geo.flight = returnPoints(geo);
  setAttrs(refs.fly.text, { text: tokenLabel(data.ov.emitted[data.ov.emitted.length - 1], 11) });
  if (box) box.legend.textContent = legend(data.ov);
  current = { data, geo, key: data.key, layer: data.layer };
  performance.measure('overview-update', 'overview-update-start');
  return geo;
}

// A batched run's rows in the same forward pass: the sibling runs' summaries of this step.
function lanesOf(run, s) {
  const rows = (run.lanes || []).filter((r) => r.steps[s] && r.steps[s].batch_size);
  return rows.map((r) => ({
    input: r.steps[s].input_tokens[0],
    output: r.steps[s].emitted[0],
    prompt: r.header.request.prompt,
    own: r === run,
  }));
}

// -- following the page --------------------------------------------------------------------

export function init(container, controls) {
  box = { container, ...controls };
  box.speed.replaceChildren(...SPEEDS.map((s) => el('option', { value: s, text: `${s}×`, selected: s === 1 })));
  box.speed.addEventListener('change', () => {
    player.speed = Number(box.speed.value);
  });
  box.replay.addEventListener('click', () => {
    if (current) animate();
  });
  refs = build(container, controls.nLayers);
  bindPicture(refs);
  box.narration.textContent = 'Generate to see one step of the model move through this picture.';
}

export function show(ctx) {
  if (!box || !ctx.run || !ctx.run.id || !ctx.step) return;
  lastCtx = ctx;
  const key = `${ctx.run.id}/${ctx.stepIndex}`;
  if (current && key === current.key && !pending) {
    // same step: selection only
    markSelection(refs, ctx.stage, ctx.layer);
    if (ctx.layer !== current.layer) refresh(ctx);
    return;
  }
  if (seenRun !== ctx.run) {
    seenRun = ctx.run;
    reveal();
  }
  pending = ctx;
  if (player.running && !ctx.run.done) return; // streaming: the newest step follows this one
  player.cancel(); // the learner (or Play) picked a step: show it now
  pump();
}

// Resolves when the step shown has finished moving and no other step is waiting.
export function settled() {
  if (!pumping && !pending && !player.running) return Promise.resolve();
  return new Promise((resolve) => waiters.push(resolve));
}

// One loop at a time: a step that arrives while it loads or moves waits in `pending` (only the
// newest is kept), and a cancelled motion lets the loop go straight on to it.
async function pump() {
  if (pumping) return;
  pumping = true;
  while (pending) {
    const ctx = pending;
    pending = null;
    let data = null;
    try {
      data = await load(ctx);
    } catch (err) {
      // e.g. an imported run this server does not hold
      refs = build(box.container, refs.nLayers);
      bindPicture(refs);
      current = null;
      box.legend.textContent = '';
      box.narration.textContent = `The overview could not load step ${ctx.stepIndex}: ${err.message}`;
    }
    if (!data || pending) continue;
    render(box.container, data);
    await animate();
  }
  pumping = false;
  const w = waiters;
  waiters = [];
  w.forEach((resolve) => resolve());
}

async function refresh(ctx) {
  try {
    const data = await load(ctx);
    if (current && data.key === current.key) {
      const running = player.running;
      render(box.container, data);
      if (!running) markDone();
    }
  } catch {
    /* keep the picture as it is */
  }
}

// -- motion --------------------------------------------------------------------------------

function animate() {
  const reduced = reducedMotion();
  const { segments, realMs, slower } = timeline(current.data.ov, current.geo, { reduced });
  current.timeline = { realMs, slower };
  refs.root.classList.remove('resolved', 'settled');
  refs.root.classList.toggle('reduced', reduced);
  for (const a of refs.root.getAnimations({ subtree: true })) a.cancel();
  setAttrs(refs.dot, { visibility: reduced ? 'hidden' : 'visible' });
  return player.play(segments);
}

function enter(seg) {
  const ov = current.data.ov;
  const prev = refs.root.getAttribute('data-active-stage');
  refs.root.setAttribute('data-active-stage', seg.stage);
  if (lit) lit.classList.remove('lit');
  lit = seg.layer === undefined ? null : refs.layers[seg.layer][seg.stage === 'attention' ? 'attn' : 'ffn'];
  if (lit) lit.classList.add('lit');
  if (seg.flight) {
    setAttrs(refs.dot, { visibility: 'hidden' });
    setAttrs(refs.fly.g, { visibility: 'visible' });
    const many = ov.emitted.length > 1;
    box.narration.textContent = current.data.last
      ? `${emittedText(ov)} ${many ? 'are the last tokens' : 'is the last token'} of this run.`
      : `${emittedText(ov)} ${many ? 'are appended to the text and go' : 'is appended to the text and goes'} ` +
        "back in as the next step's input.";
    return;
  }
  if (prev !== seg.stage)
    for (const [key, h] of Object.entries(refs.headers)) toggle(h.g, 'active', key === seg.stage);
  if (seg.layer > 0 || (seg.layer === 0 && seg.stage === 'feedforward')) return; // narrate the blocks once
  if (seg.stage === 'attention') refs.root.classList.add('writing');
  if (seg.stage === 'sampling') resolveDrafts();
  box.narration.textContent = narrate(seg.stage, ov);
}

function frame(seg, f) {
  if (seg.flight) {
    const pts = current.geo.flight;
    const p = pts[Math.min(pts.length - 1, Math.round(f * (pts.length - 1)))];
    refs.fly.g.setAttribute(
      'transform',
      `translate(${(p.x - G.chipW / 2).toFixed(1)},${(p.y - G.chipH / 2).toFixed(1)})`,
    );
    return;
  }
  if (refs.root.classList.contains('reduced')) return;
  const p = lerp(seg.from, seg.to, f);
  refs.dot.setAttribute('cx', p.x.toFixed(1));
  refs.dot.setAttribute('cy', p.y.toFixed(1));
}

function end() {
  if (lit) lit.classList.remove('lit');
  lit = null;
  markDone();
}

function markDone() {
  refs.root.setAttribute('data-active-stage', '');
  refs.root.classList.remove('writing');
  refs.root.classList.add('resolved', 'settled');
  for (const h of Object.values(refs.headers)) toggle(h.g, 'active', false);
  setAttrs(refs.dot, { visibility: 'hidden' });
  setAttrs(refs.fly.g, { visibility: 'hidden' });
}

// Speculative step: accepted drafts turn solid, a rejected one falls away.
function resolveDrafts() {
  refs.root.classList.add('resolved');
  if (refs.root.classList.contains('reduced')) return;
  for (const chip of refs.root.querySelectorAll('[data-testid=overview-draft][data-accepted=false]')) {
    chip.animate(
      [
        { transform: 'translate(0,0)', opacity: 1 },
        { transform: 'translate(0,26px)', opacity: 0.35 },
      ],
      { duration: 350, easing: 'ease-in', composite: 'add', fill: 'none' },
    );
  }
}

// 48 points evenly spaced along the return arc's three legs (down, left, up). Computed from
// the geometry, not with getPointAtLength, which would force a layout of the whole page.
function returnPoints(geo) {
  const corners = [
    { x: G.returnX, y: geo.outY + G.chipH / 2 },
    { x: G.returnX, y: G.returnY },
    { x: G.chipX + G.chipW / 2, y: G.returnY },
    { x: G.chipX + G.chipW / 2, y: geo.slotY },
  ];
  const legs = corners.slice(1).map((c, i) => Math.hypot(c.x - corners[i].x, c.y - corners[i].y));
  const total = legs.reduce((a, b) => a + b, 0);
  return Array.from({ length: 48 }, (_, k) => {
    let d = (total * k) / 47;
    let i = 0;
    while (i < legs.length - 1 && d > legs[i]) {
      d -= legs[i];
      i += 1;
    }
    return lerp(corners[i], corners[i + 1], legs[i] ? Math.min(1, d / legs[i]) : 0);
  });
}

// -- words: the aria-live narration and the legend ------------------------------------------

const emittedText = (ov) => ov.emitted.map((t) => tokenLabel(t)).join(' ');

function narrate(stage, ov) {
  const kv = ov.kv;
  const n = ov.input_tokens.length;
  const spec = ov.speculative;
  const L = ov.layers.length;
  switch (stage) {
    case 'tokenization':
      if (ov.drafts.length)
        return (
          `Step ${ov.step}: the ${spec.source} draft guesses ${ov.drafts.length} tokens; they go in together ` +
          `with ${tokenLabel(ov.input_tokens[0])} to be checked in one pass.`
        );
      return (
        `Step ${ov.step}: ${n} token${n === 1 ? '' : 's'} go${n === 1 ? 'es' : ''} in. ` +
        (kv.reused
          ? `${kv.reused} earlier positions come from the KV cache.`
          : kv.on
            ? 'The KV cache starts empty.'
            : `The KV cache is off: all ${kv.held} positions are computed again.`)
      );
    case 'embedding':
      return `Embedding: each token id picks a row of ${ov.model.d_model} numbers.`;
    case 'attention':
    case 'feedforward':
      return (
        `${L} blocks of attention and feed-forward: the logit lens's guess goes from ` +
        `${tokenLabel(ov.layers[0].lens)} after layer 0 to ${tokenLabel(ov.layers[L - 1].lens)} after layer ${L - 1}.`
      );
    case 'prediction':
      return `Prediction: ${ov.top
        .slice(0, 3)
        .map((t) => `${tokenLabel(t)} ${pct(t.prob)}`)
        .join(', ')}.`;
    default: {
      const s = ov.sampling;
      let text =
        s.greedy || s.u === null
          ? `Sampling: greedy, the top token ${tokenLabel(s.chosen)} is taken.`
          : `Sampling: u = ${s.u.toFixed(3)} falls in the slice of ${tokenLabel(s.chosen)} (${s.kept} tokens kept).`;
      if (ov.drafts.length) {
        text +=
          ` ${spec.accepted} of ${ov.drafts.length} drafts accepted` +
          (spec.accepted < ov.drafts.length
            ? `; the model's own ${tokenLabel(spec.final)} replaces ${tokenLabel(ov.drafts[spec.accepted])}.`
            : `, plus the model's ${tokenLabel(spec.final)}.`);
      }
      return text;
    }
  }
}

function legend(ov) {
  const t = timeline(ov, { fedY: 0, uY: 0 }, { reduced: true });
  const att = ov.attention;
  const norms = ov.layers.map((l) => l.resid_norm);
  const focus = ov.speculative ? ` Lens, arcs and prediction are for position #${ov.focus_position}.` : '';
  const pace =
    t.slower >= 1.5
      ? `${Math.round(t.slower)}× slower`
      : t.slower > 0.67
        ? 'at about its real speed'
        : `${(1 / t.slower).toFixed(1)}× faster`;
  return (
    `Step ${ov.step} (${ov.kind}) took ${fmtMs(t.realMs)} on the CPU; the picture plays it ${pace} ` +
    `(each stage at least 0.12 s). Arcs: where #${att.query_position} looks in layer ${att.layer} ` +
    `(mean of ${att.heads} heads; width = weight). Stream thickness grows with the residual stream's norm ` +
    `(square-root scale), ${ov.embedding.focus_norm.toFixed(1)} after the embedding to ` +
    `${norms[norms.length - 1].toFixed(0)} after the last block. ` +
    `Orange bars: feed-forward mean |activation|.${focus}`
  );
}

// -- clicks and keys -----------------------------------------------------------------------

function reveal() {
  const panel = box.container.closest('section');
  const top = panel.getBoundingClientRect().top;
  if (top < 0 || top > window.innerHeight * 0.45)
    panel.scrollIntoView({ block: 'start', behavior: reducedMotion() ? 'auto' : 'smooth' });
}

function open(patch) {
  if (!lastCtx) return;
  lastCtx.setView(patch);
  lastCtx = { ...lastCtx, ...patch };
  show(lastCtx);
  const stage = $(SEL.pipeline);
  if (stage) stage.scrollIntoView({ block: 'start', behavior: reducedMotion() ? 'auto' : 'smooth' });
}

function pickLayer(layer) {
  if (!lastCtx) return;
  lastCtx.setView({ layer });
  lastCtx = { ...lastCtx, layer };
  show(lastCtx);
}

function bindPicture(r) {
  r.root.addEventListener('click', (e) => {
    const layer = e.target.closest('[data-layer]');
    const staged = e.target.closest('[data-stage]');
    if (!staged) return;
    open(
      layer ? { stage: staged.dataset.stage, layer: Number(layer.dataset.layer) } : { stage: staged.dataset.stage },
    );
  });
  r.root.addEventListener('keydown', (e) => {
    const head = e.target.closest('.ov-head');
    if (head && (e.key === 'Enter' || e.key === ' ')) {
      e.preventDefault();
      e.stopPropagation();
      open({ stage: head.dataset.stage });
    }
  });
  r.blocks.addEventListener('keydown', (e) => {
    if (!lastCtx) return;
    const L = r.nLayers;
    const layer = lastCtx.layer;
    const moves = { ArrowLeft: layer - 1, ArrowRight: layer + 1, Home: 0, End: L - 1 };
    if (e.key in moves) pickLayer(Math.max(0, Math.min(L - 1, moves[e.key])));
    else if (e.key === 'Enter') open({ stage: 'attention', layer });
    else if (e.key === 'f' || e.key === 'F') open({ stage: 'feedforward', layer });
    else return;
    e.preventDefault();
    e.stopPropagation();
  });
}

export const controls = () => ({
  narration: $(SEL.overviewNarration),
  legend: $(SEL.overviewLegend),
  speed: $(SEL.overviewSpeed),
  replay: $(SEL.overviewReplay),
});
