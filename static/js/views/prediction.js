// Stage 5: the top next-token probabilities and the logit lens (each layer's guess).
import * as api from '../api.js';
import { CATEGORY_COLORS } from '../constants.js';
import { el, pct, visible } from '../dom.js';
import { FACTS } from '../facts.js';
import { draw, inkOn, plotDiv, plotText, plotToken, viridis } from '../plot.js';
import { focusLabel, focusNote } from './position.js';

// The bars need only the step summary; the logit lens (about 0.2 s on the server) is a promise
// that render awaits after drawing them, so the bars show at once.
export function load(ctx) {
  return { ...ctx, lens: api.logitLens(ctx.run.id, ctx.stepIndex) };
}

export async function render(container, { step, model, lens, stale }) {
  const top = step.top;
  const bars = plotDiv('plot small');
  const labels = top.map((t) => `${plotToken(t.text)} (${t.id})`);
  container.append(bars);
  draw(bars, [{ type: 'bar', orientation: 'h', x: top.map((t) => t.prob), y: labels,
    text: top.map((t) => `${pct(t.prob)}  logit ${t.logit.toFixed(2)}`), textposition: 'auto',
    marker: { color: top.map((_, i) => (i === 0 ? CATEGORY_COLORS[0] : CATEGORY_COLORS[4])) } }],
  { title: { text: `Next-token probabilities at ${plotText(focusLabel(step))} `
      + `(top ${top.length} of ${model.vocab_size.toLocaleString()})` },
  height: 60 + 28 * top.length, margin: { l: 140, r: 20, t: 40, b: 40 },
  xaxis: { range: [0, 1], title: { text: 'probability' } }, yaxis: { autorange: 'reversed', type: 'category' } },
  `Bar chart of the ${top.length} most likely next tokens: `
    + `${top.map((t) => `${visible(t.text)} ${pct(t.prob)}`).join(', ')}.`);
  const shown = top.reduce((a, t) => a + t.prob, 0);
  container.append(el('p', { class: 'caption', text: `Most likely next token: ${visible(top[0].text)} `
    + `(${pct(top[0].prob)}). These ${top.length} tokens hold ${pct(shown)} of the probability; the other `
    + `${(model.vocab_size - top.length).toLocaleString()} share the remaining ${pct(Math.max(0, 1 - shown))}.`
    + focusNote(step) }),
  el('p', { class: 'caption', text: `The final ${model.arch === 'llama' ? 'RMSNorm' : 'LayerNorm'} and the `
    + `unembedding (${model.d_model} → ${model.vocab_size.toLocaleString()}`
    + `${model.tied_embeddings ? ', the embedding table transposed' : ''}) give one logit z per token; softmax turns `
    + `them into probabilities, p = exp(z) / Σ exp(z) over all ${model.vocab_size.toLocaleString()} tokens. `
    + `The top logit, ${top[0].logit.toFixed(2)}, becomes ${pct(top[0].prob)}.` }));

  const lensBox = el('div', {}, el('p', { class: 'caption', text: 'Computing the logit lens…' }));
  container.append(el('h3', { text: 'Logit lens: the final norm and unembedding applied after each layer' }), lensBox);
  const { layers, focus_position: at } = await lens;
  if (stale()) return;
  lensBox.replaceChildren(lensTable(layers, top[0].id),
    el('p', { class: 'caption', text: `At ${focusLabel(step, at)}. Cell colour is probability (viridis). Bold: the `
      + `model's final top token. ${settled(layers, top[0].id)} Only the last layer is trained to be read through `
      + 'the unembedding, so earlier rows show what is already readable there, not what the model would predict '
      + 'if it stopped.' }));
}

// From which layer on the lens's top token is the model's final one, read from this step's lens.
function settled(layers, finalId) {
  let from = layers.length;
  while (from > 0 && layers[from - 1][0].id === finalId) from -= 1;
  if (from === layers.length) return 'Even the last layer\'s top token differs from the final one.';
  return from === 0 ? 'Every layer\'s top token is already the final one.'
    : `From layer ${from} on, the lens's top token is the final one.`;
}

// One row per layer, its FACTS.lens_top most likely tokens; text colour chosen for contrast on the cell.
function lensTable(layers, finalId) {
  const ranks = Array.from({ length: FACTS.lens_top }, (_, i) => el('th', { scope: 'col', text: `#${i + 1}` }));
  const rows = layers.map((cands, l) => el('tr', {}, el('th', { scope: 'row', text: `layer ${l}` }),
    ...cands.map((c) => {
      const cell = el('td', { text: `${visible(c.text)}  ${pct(c.prob)}`, title: `id ${c.id}` });
      cell.style.background = viridis(c.prob);
      cell.style.color = inkOn(c.prob);
      if (c.id === finalId) cell.style.fontWeight = '700';
      return cell;
    })));
  return el('table', { class: 'lens' },
    el('caption', { class: 'visually-hidden', text: 'Logit lens: each layer\'s most likely next tokens' }),
    el('thead', {}, el('tr', {}, el('td', { text: '' }), ...ranks)), el('tbody', {}, ...rows));
}
