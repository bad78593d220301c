// The timing panel: per-token latency against position, tokens/s, time per stage, weight
// and KV-cache memory, all from the run's own measurements, with earlier runs overlaid.
import { CATEGORY_COLORS, PATTERNS, STAGE_COLORS } from '../constants.js';
import { el, fmtBytes, fmtMs } from '../dom.js';
import { draw, plotDiv, plotText } from '../plot.js';

const STAGE_PARTS = ['embed', 'attention', 'feedforward', 'prediction', 'sampling', 'draft'];
const SYMBOLS = ['circle', 'square', 'diamond', 'triangle-up', 'x', 'star'];
export const HISTORY_LIMIT = 6;          // earlier runs kept on the charts for comparison

export function runLabel(run) {
  const r = run.header.request;
  const parts = [`KV cache ${r.kv_cache ? 'on' : 'off'}`, r.quantization];
  if (r.speculative) parts.push(`speculative ${r.speculative} ×${r.num_draft_tokens}`);
  if (run.batchSize) parts.push(`batch of ${run.batchSize}`);
  return parts.join(' · ');
}

// Numbers derived from the step summaries, so they update while the run streams.
export function measure(run) {
  const steps = run.steps;
  const perStep = steps.map((s) => s.timings_ms.total);
  const emitted = steps.map((s) => s.emitted.length);
  const decodeMs = perStep.slice(1).reduce((a, b) => a + b, 0);
  const decodeTokens = emitted.slice(1).reduce((a, b) => a + b, 0);
  const stage = Object.fromEntries(STAGE_PARTS.map((k) => [k, steps.reduce((a, s) => a + (s.timings_ms[k] || 0), 0)]));
  const prompt = run.header.prompt_tokens.length;
  let context = prompt;
  return {
    positions: emitted.map((n) => { const x = context; context += n; return x; }), perStep,
    firstMs: perStep[0], totalMs: perStep.reduce((a, b) => a + b, 0),
    tokensPerSecond: decodeMs > 0 ? (1000 * decodeTokens) / decodeMs : null,
    tokens: emitted.reduce((a, b) => a + b, 0), stage,
    kvBytes: steps.length ? steps[steps.length - 1].kv.cache_bytes : 0,
  };
}

// For a speculative run: the latest earlier run of the same prompt and length without drafts.
function baseline(run, history) {
  const r = run.header.request;
  if (!r.speculative || !run.done) return null;
  const runs = history.filter((h) => h !== run);
  for (let i = runs.length - 1; i >= 0; i -= 1) {
    const q = runs[i].header.request;
    if (!q.speculative && !runs[i].batchSize && q.prompt === r.prompt && q.max_new_tokens === r.max_new_tokens
        && q.quantization === r.quantization && q.kv_cache) return { run: runs[i], index: i };
  }
  return null;
}

function metric(k, v, testid = null) {
  return el('div', { class: 'metric', 'data-testid': testid },
    el('div', { class: 'v', text: v }), el('div', { class: 'k', text: k }));
}

// The run on screen, the earlier runs it is compared with, and when its first token showed.
export function load({ run, history, ttftMs }) {
  return { run, history, ttftMs };
}

export function render(container, { run, history, ttftMs }) {
  container.replaceChildren(el('h2', { text: 'Timing and memory' }));
  if (!run || !run.steps.length) {
    container.append(el('p', { class: 'caption', text: 'Generate to see how long each token took, per stage, and '
      + 'how much memory the weights and the KV cache use.' }));
    return;
  }
  const m = measure(run);
  container.append(el('p', { 'data-testid': 'timing-label' }, el('strong', { text: 'This run: ' }), runLabel(run)));
  container.append(metrics(run, m, history, ttftMs));
  const lat = plotDiv('plot small');
  const stages = plotDiv('plot small');
  container.append(el('div', { class: 'charts' }, lat, stages));
  const runs = [...history.filter((h) => h !== run), run];
  drawLatency(lat, runs, run);
  drawStages(stages, runs, run);
  container.append(el('p', { class: 'caption', text: 'What each bar counts: embed, the table lookup (and rotary '
    + 'angles); attention, the whole attention half of every block: its norm, the Q/K/V projections, the scores, '
    + 'softmax and weighted sum, and the output projection W_O; feedforward, the norm and the feed-forward '
    + 'matrices; prediction, the final norm and the unembedding; sampling, filtering the distribution and the '
    + 'draw (on speculative steps also checking the drafts); draft, proposing draft tokens.' }));
  container.append(el('p', { class: 'caption', text: 'Measured on this computer\'s CPU with NumPy; the machine may '
    + 'be shared, so single numbers can be noisy; compare the shapes of the lines. Runs you made earlier stay on the '
    + `charts so you can compare settings (up to ${HISTORY_LIMIT}).` }));
}

function metrics(run, m, history, ttftMs) {
  const model = run.header.model;
  const box = el('div', { class: 'metrics' },
    metric('first step (prefill, whole prompt)', fmtMs(m.firstMs)),
    metric('decode speed', m.tokensPerSecond ? `${m.tokensPerSecond.toFixed(1)} tokens/s` : '—', 'tokens-per-second'),
    metric('total compute', fmtMs(m.totalMs)),
    metric(`weights (${model.quantization})`, fmtBytes(model.weight_bytes)),
    metric('KV cache now', run.header.request.kv_cache ? fmtBytes(m.kvBytes) : 'off (0 B)'),
    metric('KV cache per token', fmtBytes(model.kv_bytes_per_token)));
  if (ttftMs) box.append(metric('first token on screen', fmtMs(ttftMs), 'ttft'));
  const stats = run.stats || {};
  if (stats.acceptance_rate !== undefined) {
    box.append(metric('draft tokens accepted', `${(100 * stats.acceptance_rate).toFixed(0)}% of ${stats.proposed}`,
      'acceptance'));
    box.append(metric('tokens per model pass (1 without drafts)',
      `${Number(stats.tokens_per_verify_step).toFixed(2)}`));
  }
  const base = baseline(run, history);
  if (base) {
    const speedup = measure(base.run).totalMs / m.totalMs;
    box.append(metric(`measured speedup vs #${base.index + 1} (same prompt, no drafts)`, `${speedup.toFixed(2)}×`,
      'speedup'));
  }
  if (run.batch) {
    box.append(metric(`whole batch of ${run.batch.size}`, `${run.batch.tokens_per_second} tokens/s`,
      'batch-throughput'));
  }
  return box;
}

// The name of run #i in a legend; its label holds the start of the prompt, so it is escaped for plotly.
function runName(r, i, current) {
  return `#${i + 1} ${plotText(r.label || runLabel(r))}${r === current ? ' (this run)' : ''}`;
}

// One line per run, told apart by colour, marker symbol and width (this run is the thick one).
function drawLatency(node, runs, current) {
  draw(node, runs.map((r, i) => {
    const mm = measure(r);
    return { type: 'scatter', mode: 'lines+markers', name: runName(r, i, current), x: mm.positions, y: mm.perStep,
      marker: { symbol: SYMBOLS[i % SYMBOLS.length], size: 7 },
      line: { color: CATEGORY_COLORS[i % CATEGORY_COLORS.length], width: r === current ? 3 : 1.5 } };
  }), { title: { text: 'Latency of each step vs. tokens already in context' }, showlegend: true,
    legend: { orientation: 'h', y: -0.3 }, height: 340,
    xaxis: { title: { text: 'tokens in context' } }, yaxis: { title: { text: 'ms' }, rangemode: 'tozero' } },
  `Line chart of each step's latency against the tokens in context, for ${runs.length} run(s); this run's steps `
    + `took ${measure(current).perStep.map((ms) => fmtMs(ms)).join(', ')}.`);
}

function drawStages(node, runs, current) {
  const names = runs.map((r, i) => `#${i + 1}${r === current ? ' (this run)' : ''}`);
  const stage = measure(current).stage;
  draw(node, STAGE_PARTS.map((k, i) => ({ type: 'bar', name: k, y: names, x: runs.map((r) => measure(r).stage[k]),
    orientation: 'h', marker: { color: STAGE_COLORS[k], pattern: { shape: PATTERNS[i], solidity: 0.5 } } })),
  { title: { text: 'Where the time went (ms, whole run)' }, barmode: 'stack', showlegend: true,
    legend: { orientation: 'h', y: -0.3 }, height: 340, margin: { l: 90, r: 20, t: 40, b: 60 },
    yaxis: { type: 'category', automargin: true, autorange: 'reversed' } },
  `Stacked bar chart of the time per stage for ${runs.length} run(s); this run: `
    + `${STAGE_PARTS.map((k) => `${k} ${fmtMs(stage[k])}`).join(', ')}.`);
}
