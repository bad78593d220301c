// Stage 5: the top next-token probabilities and the logit lens (each layer's guess).
import * as api from '../api.js';
import { CATEGORY_COLORS } from '../constants.js';
import { el, pct, visible } from '../dom.js';
import { FACTS } from '../facts.js';
import { draw, inkOn, plotDiv, plotToken, viridis } from '../plot.js';

// The bars need only the step summary; the logit lens (about 0.2 s on the server) is a promise
// that render awaits after drawing them, so the bars show at once.
export function load(ctx) {
  return { ...ctx, lens: api.logitLens(ctx.run.id, ctx.stepIndex) };
}

export async function render(container, { step, stepIndex, model, lens, stale }) {
  const top = step.top;
  const bars = plotDiv('plot small');
  const labels = top.map((t) => `${plotToken(t.text)} (${t.id})`);
  container.append(bars);
  draw(bars, [{ type: 'bar', orientation: 'h', x: top.map((t) => t.prob), y: labels,
    text: top.map((t) => `${pct(t.prob)}  logit ${t.logit.toFixed(2)}`), textposition: 'auto',
    marker: { color: top.map((_, i) => (i === 0 ? CATEGORY_COLORS[0] : CATEGORY_COLORS[4])) } }],
  { title: { text: `Next-token probabilities after step ${stepIndex} `
      + `(top ${top.length} of ${model.vocab_size.toLocaleString()})` },
  height: 60 + 28 * top.length, margin: { l: 140, r: 20, t: 40, b: 40 },
  xaxis: { range: [0, 1], title: { text: 'probability' } }, yaxis: { autorange: 'reversed', type: 'category' } },
  `Bar chart of the ${top.length} most likely next tokens: `
    + `${top.map((t) => `${visible(t.text)} ${pct(t.prob)}`).join(', ')}.`);
  const shown = top.reduce((a, t) => a + t.prob, 0);
  container.append(el('p', { class: 'caption', text: `Most likely next token: ${visible(top[0].text)} `
    + `(${pct(top[0].prob)}). These ${top.length} tokens hold ${pct(shown)} of the probability; the other `
    + `${(model.vocab_size - top.length).toLocaleString()} share the remaining ${pct(Math.max(0, 1 - shown))}.` }));

  const lensBox = el('div', {}, el('p', { class: 'caption', text: 'Computing the logit lens…' }));
  container.append(el('h3', { text: 'Logit lens: what each layer would predict' }), lensBox);
  const { layers } = await lens;
  if (stale()) return;
  lensBox.replaceChildren(lensTable(layers, top[0].id),
    el('p', { class: 'caption', text: 'Cell colour is probability (viridis). Bold: the model\'s final top token. '
      + 'Early layers rarely know the answer; it usually settles in the last third.' }));
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
