// Stage 5: the top next-token probabilities and the logit lens (each layer's guess).
import * as api from '../api.js';
import { CATEGORY_COLORS } from '../constants.js';
import { el, pct, visible } from '../dom.js';
import { draw, plotDiv, viridis } from '../plot.js';
import { focusLabel, focusNote } from './position.js';

// The bars draw at once; the logit lens (about 0.2 s on the server) fills in after.
export async function render(container, ctx) {
  const top = ctx.step.top;
  const bars = plotDiv('plot small');
  const labels = top.map((t) => `${visible(t.text)} (${t.id})`);
  container.append(bars);
  draw(bars, [{ type: 'bar', orientation: 'h', x: top.map((t) => t.prob), y: labels,
    text: top.map((t) => `${pct(t.prob)}  logit ${t.logit.toFixed(2)}`), textposition: 'auto',
    marker: { color: top.map((_, i) => (i === 0 ? CATEGORY_COLORS[0] : CATEGORY_COLORS[4])) } }],
  { title: { text: `Next-token probabilities at ${focusLabel(ctx.step)} (top ${top.length} of ${ctx.model.vocab_size.toLocaleString()})` },
    height: 60 + 28 * top.length, margin: { l: 140, r: 20, t: 40, b: 40 }, xaxis: { range: [0, 1], title: { text: 'probability' } },
    yaxis: { autorange: 'reversed', type: 'category' } });
  const shown = top.reduce((a, t) => a + t.prob, 0);
  const z = top[0].logit;
  container.append(el('p', { class: 'caption', text: `Most likely next token: ${visible(top[0].text)} (${pct(top[0].prob)}). These ${top.length} tokens hold ${pct(shown)} of the probability; the other ${(ctx.model.vocab_size - top.length).toLocaleString()} share the remaining ${pct(Math.max(0, 1 - shown))}.${focusNote(ctx.step)}` }),
  el('p', { class: 'caption', text: `The final ${ctx.model.arch === 'llama' ? 'RMSNorm' : 'LayerNorm'} and the unembedding (${ctx.model.d_model} → ${ctx.model.vocab_size.toLocaleString()}${ctx.model.tied_embeddings ? ', the embedding table transposed' : ''}) give one logit z per token; softmax turns them into probabilities, p = exp(z) / Σ exp(z) over all ${ctx.model.vocab_size.toLocaleString()} tokens. The top logit, ${z.toFixed(2)}, becomes ${pct(top[0].prob)}.` }));

  const lensBox = el('div', {}, el('p', { class: 'caption', text: 'Computing the logit lens…' }));
  container.append(el('h3', { text: 'Logit lens: the final norm and unembedding applied after each layer' }), lensBox);
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
  el('p', { class: 'caption', text: `Cell colour is probability (viridis). Bold: the model's final top token. ${settled(lens.layers, final)} Only the last layer is trained to be read through the unembedding, so earlier rows show what is already readable there, not what the model would predict if it stopped.` }));
}

// From which layer on the lens's top token is the model's final one, read from this step's lens.
function settled(layers, final) {
  let from = layers.length;
  while (from > 0 && layers[from - 1][0].id === final) from -= 1;
  if (from === layers.length) return 'Even the last layer\'s lens differs from the final top token.';
  return from === 0 ? 'Every layer\'s top token is already the final one.' : `From layer ${from} on, the lens's top token is the final one.`;
}
