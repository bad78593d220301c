// Stage 5: the top next-token probabilities and the logit lens (each layer's guess).
import * as api from '../api.js';
import { CATEGORY_COLORS } from '../constants.js';
import { el, pct, visible } from '../dom.js';
import { draw, plotDiv, viridis } from '../plot.js';

// The bars draw at once; the logit lens (about 0.2 s on the server) fills in after.
export async function render(container, ctx) {
  const top = ctx.step.top;
  const bars = plotDiv('plot small');
  const labels = top.map((t) => `${visible(t.text)} (${t.id})`);
  container.append(bars);
  draw(bars, [{ type: 'bar', orientation: 'h', x: top.map((t) => t.prob), y: labels,
    text: top.map((t) => `${pct(t.prob)}  logit ${t.logit.toFixed(2)}`), textposition: 'auto',
    marker: { color: top.map((_, i) => (i === 0 ? CATEGORY_COLORS[0] : CATEGORY_COLORS[4])) } }],
  { title: { text: `Next-token probabilities after step ${ctx.stepIndex} (top ${top.length} of ${ctx.model.vocab_size.toLocaleString()})` },
    height: 60 + 28 * top.length, margin: { l: 140, r: 20, t: 40, b: 40 }, xaxis: { range: [0, 1], title: { text: 'probability' } },
    yaxis: { autorange: 'reversed', type: 'category' } });
  const shown = top.reduce((a, t) => a + t.prob, 0);
  container.append(el('p', { class: 'caption', text: `Most likely next token: ${visible(top[0].text)} (${pct(top[0].prob)}). These ${top.length} tokens hold ${pct(shown)} of the probability; the other ${(ctx.model.vocab_size - top.length).toLocaleString()} share the remaining ${pct(Math.max(0, 1 - shown))}.` }));

  const lensBox = el('div', {}, el('p', { class: 'caption', text: 'Computing the logit lens…' }));
  container.append(el('h3', { text: 'Logit lens: what each layer would predict' }), lensBox);
  const lens = await api.logitLens(ctx.run.id, ctx.stepIndex);
  if (ctx.stale()) return;
  const final = top[0].id;
  const rows = lens.layers.map((cands, l) => el('tr', {}, el('th', { text: `layer ${l}` }),
    ...cands.map((c) => {
      const cell = el('td', { text: `${visible(c.text)}  ${pct(c.prob)}`, title: `id ${c.id}` });
      cell.style.background = viridis(c.prob);
      cell.style.color = c.prob > 0.55 ? '#000' : '#fff';
      if (c.id === final) cell.style.fontWeight = '700';
      return cell;
    })));
  lensBox.replaceChildren(el('table', { class: 'lens' },
    el('thead', {}, el('tr', {}, el('th', { text: '' }), ...[1, 2, 3, 4, 5].map((i) => el('th', { text: `#${i}` })))),
    el('tbody', {}, ...rows)),
  el('p', { class: 'caption', text: 'Cell colour is probability (viridis). Bold: the model\'s final top token. Early layers rarely know the answer; it usually settles in the last third.' }));
}
