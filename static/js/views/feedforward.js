// Stage 4: the chosen layer's feed-forward activations and the residual stream's growth.
import * as api from '../api.js';
import { CATEGORY_COLORS } from '../constants.js';
import { el } from '../dom.js';
import { draw, plotDiv } from '../plot.js';
import { picker } from './controls.js';
import { focusLabel } from './position.js';

export async function load(ctx) {
  const ffn = await api.feedforward(ctx.run.id, ctx.stepIndex, Math.min(ctx.layer, ctx.model.n_layers - 1));
  return { ...ctx, ffn };
}

export function render(container, { ffn, model: cfg, setView, step }) {
  const layer = ffn.layer;
  const act = cfg.arch === 'llama' ? 'SwiGLU (SiLU(W_gate x) ⊙ W_up x)' : 'GELU';
  const shape = cfg.arch === 'llama'
    ? `W_gate and W_up ${cfg.d_model} → ${ffn.size}, W_down ${ffn.size} → ${cfg.d_model}`
    : `W_1 ${cfg.d_model} → ${ffn.size}, W_2 ${ffn.size} → ${cfg.d_model}`;
  const at = focusLabel(step, ffn.focus_position);
  container.append(el('div', { class: 'view-controls' },
    picker('Layer', cfg.n_layers, layer, (l) => setView({ layer: l })),
    el('span', { class: 'caption', text: `${ffn.size} hidden units after ${act}, at ${at}; ${shape}. `
      + 'The histogram counts units per activation value (log scale); the bars on the right are the '
      + `${ffn.top_neurons.length} units with the largest |activation|.` })));

  const hist = plotDiv('plot small');
  const top = plotDiv('plot small');
  const resid = plotDiv('plot small');
  container.append(el('div', { class: 'charts two' }, hist, top), resid);
  const e = ffn.histogram.edges;
  const centers = ffn.histogram.counts.map((_, i) => (e[i] + e[i + 1]) / 2);
  draw(hist, [{ type: 'bar', x: centers, y: ffn.histogram.counts, marker: { color: CATEGORY_COLORS[0] } }],
    { title: { text: `Activations, layer ${layer}` }, height: 260, bargap: 0.05,
      xaxis: { title: { text: 'activation value' } }, yaxis: { title: { text: 'units' }, type: 'log' } },
    `Histogram of the ${ffn.size} activations of layer ${layer}, from ${e[0].toFixed(2)} to `
      + `${e[e.length - 1].toFixed(2)}.`);
  const neurons = ffn.top_neurons;
  draw(top, [{ type: 'bar', x: neurons.map((n) => `#${n.index}`), y: neurons.map((n) => n.value),
    marker: { color: neurons.map((n) => (n.value >= 0 ? CATEGORY_COLORS[1] : CATEGORY_COLORS[4])) } }],
  { title: { text: 'Strongest units' }, height: 260, xaxis: { type: 'category' } },
  `Bar chart of the strongest units: ${neurons.map((n) => `#${n.index} ${n.value.toFixed(2)}`).join(', ')}.`);
  const norms = ffn.residual_norms;
  const layers = norms.map((_, i) => i);
  const mark = (here, other) => layers.map((l) => (l === layer ? here : other));
  draw(resid, [{ type: 'scatter', mode: 'lines+markers', x: layers, y: norms, line: { color: CATEGORY_COLORS[2] },
    marker: { size: mark(12, 5), color: mark(CATEGORY_COLORS[5], CATEGORY_COLORS[2]) } }],
  { title: { text: 'Residual stream size after each layer' }, height: 260,
    xaxis: { title: { text: 'layer' } }, yaxis: { title: { text: 'vector length (L2 norm)' } } },
  `Line chart of the residual stream's length after each of ${norms.length} layers: `
    + `${norms[0].toFixed(1)} after layer 0, ${norms[layer].toFixed(1)} after layer ${layer}, `
    + `${norms[norms.length - 1].toFixed(1)} after the last.`);
  const [first, last] = [norms[0], norms[norms.length - 1]];
  container.append(el('p', { class: 'caption', text: 'Each block adds its attention and feed-forward output to the '
    + `residual stream at ${at}; here its size ${last > first ? 'grows' : 'shrinks'} from ${first.toFixed(1)} after `
    + `layer 0 to ${last.toFixed(1)} after layer ${cfg.n_layers - 1}. Each part reads a `
    + `${cfg.arch === 'llama' ? 'RMSNorm' : 'LayerNorm'}-normalized copy of the stream, so it sees the same scale `
    + 'whatever the stream\'s size; the stream itself is normalized only by the final norm before Prediction.' }));
}
