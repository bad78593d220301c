// Stage 4: the chosen layer's feed-forward activations and the residual stream's growth.
import * as api from '../api.js';
import { CATEGORY_COLORS } from '../constants.js';
import { el } from '../dom.js';
import { draw, plotDiv } from '../plot.js';
import { picker } from './controls.js';
import { focusLabel } from './position.js';

export function load(ctx) {
  return api.feedforward(ctx.run.id, ctx.stepIndex, Math.min(ctx.layer, ctx.model.n_layers - 1));
}

export function render(container, ctx, data) {
  const cfg = ctx.model;
  const layer = data.layer;
  const act = cfg.arch === 'llama' ? 'SwiGLU (SiLU(W_gate x) ⊙ W_up x)' : 'GELU';
  const shape = cfg.arch === 'llama'
    ? `W_gate and W_up ${cfg.d_model} → ${data.size}, W_down ${data.size} → ${cfg.d_model}`
    : `W_1 ${cfg.d_model} → ${data.size}, W_2 ${data.size} → ${cfg.d_model}`;
  container.append(el('div', { class: 'view-controls' },
    picker('Layer', cfg.n_layers, layer, (l) => ctx.setView({ layer: l })),
    el('span', { class: 'caption', text: `${data.size} hidden units after ${act}, at ${focusLabel(ctx.step)}; ${shape}. The histogram counts units per activation value (log scale); the bars on the right are the ${data.top_neurons.length} units with the largest |activation|.` })));

  const hist = plotDiv('plot small');
  const top = plotDiv('plot small');
  const resid = plotDiv('plot small');
  container.append(el('div', { class: 'charts two' }, hist, top), resid);
  const e = data.histogram.edges;
  const centers = data.histogram.counts.map((_, i) => (e[i] + e[i + 1]) / 2);
  draw(hist, [{ type: 'bar', x: centers, y: data.histogram.counts, marker: { color: CATEGORY_COLORS[0] } }],
    { title: { text: `Activations, layer ${layer}` }, height: 260, bargap: 0.05,
      xaxis: { title: { text: 'activation value' } }, yaxis: { title: { text: 'units' }, type: 'log' } });
  draw(top, [{ type: 'bar', x: data.top_neurons.map((n) => `#${n.index}`), y: data.top_neurons.map((n) => n.value),
    marker: { color: data.top_neurons.map((n) => (n.value >= 0 ? CATEGORY_COLORS[1] : CATEGORY_COLORS[4])) } }],
  { title: { text: 'Strongest units' }, height: 260, xaxis: { type: 'category' } });
  const layers = data.residual_norms.map((_, i) => i);
  draw(resid, [{ type: 'scatter', mode: 'lines+markers', x: layers, y: data.residual_norms, line: { color: CATEGORY_COLORS[2] },
    marker: { size: layers.map((l) => (l === layer ? 12 : 5)), color: layers.map((l) => (l === layer ? CATEGORY_COLORS[5] : CATEGORY_COLORS[2])) } }],
  { title: { text: 'Residual stream size after each layer' }, height: 260,
    xaxis: { title: { text: 'layer' } }, yaxis: { title: { text: 'vector length (L2 norm)' } } });
  const first = data.residual_norms[0];
  const last = data.residual_norms[data.residual_norms.length - 1];
  const norm = cfg.arch === 'llama' ? 'RMSNorm' : 'LayerNorm';
  container.append(el('p', { class: 'caption', text: `Each block adds its attention and feed-forward output to the residual stream at ${focusLabel(ctx.step)}; here its size ${last > first ? 'grows' : 'shrinks'} from ${first.toFixed(1)} after layer 0 to ${last.toFixed(1)} after layer ${cfg.n_layers - 1}. Each part reads a ${norm}-normalized copy of the stream, so it sees the same scale whatever the stream's size; the stream itself is never normalized until the final norm before Prediction.` }));
}
