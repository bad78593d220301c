// Stage 2: token vectors as colour strips, how position enters, and a 2-D PCA of the prompt's vectors.
import * as api from '../api.js';
import { SIGNED } from '../constants.js';
import { el, visible } from '../dom.js';
import { draw, plotDiv } from '../plot.js';

export async function load(ctx) {
  const data = await api.embedding(ctx.run.id, ctx.stepIndex);
  const first = data.pca ? data : await api.embedding(ctx.run.id, 0);
  return { data, first };
}

export function render(container, ctx, { data, first }) {
  const labels = data.tokens.map((t) => visible(t.text));
  const rows = labels.map((_, i) => i);
  const strips = plotDiv('plot small');
  const pos = plotDiv('plot small');
  const pca = plotDiv('plot');
  container.append(
    el('h3', { text: `Token vectors (${data.vectors[0].length} numbers each)` }), strips,
    el('p', { class: 'caption', text: `One row per token fed in this step; colour is the value of each dimension. Vector lengths: ${data.norms.map((n) => n.toFixed(2)).join(', ')}.` }),
    el('p', { class: 'caption', text: `Each row is the token id's row of the ${ctx.model.vocab_size.toLocaleString()} × ${data.vectors[0].length} embedding table: a lookup, no arithmetic. ` +
      (ctx.model.tied_embeddings
        ? 'The same table, transposed, is the unembedding that turns the last vector into logits (Prediction).'
        : 'This model has a separate unembedding matrix for the logits (Prediction).') }),
  );
  draw(strips, [{ type: 'heatmap', z: data.vectors, y: rows, colorscale: SIGNED, colorbar: { thickness: 10 } }],
    { height: 140 + 24 * rows.length, yaxis: { tickvals: rows, ticktext: labels, autorange: 'reversed' }, xaxis: { title: { text: 'dimension' } } });

  if (data.position.kind === 'rope') {
    container.append(el('h3', { text: 'Position: rotary angles (Llama family)' }), pos,
      el('p', { class: 'caption', text: `Nothing is added to the vector. Inside attention, each pair of query/key dimensions is rotated by position × frequency (base θ = ${data.position.theta}). Shown: cos(angle) for each position and pair. Left pairs spin fast, right pairs barely move, so both near and far offsets can be told apart.` }));
    const cos = data.position.angles.map((row) => row.map(Math.cos));
    draw(pos, [{ type: 'heatmap', z: cos, y: rows, zmin: -1, zmax: 1, colorscale: SIGNED, colorbar: { thickness: 10 } }],
      { height: 140 + 24 * rows.length, yaxis: { tickvals: rows, ticktext: labels, autorange: 'reversed' }, xaxis: { title: { text: 'dimension pair (fast → slow)' } } });
  } else {
    container.append(el('h3', { text: 'Position: learned position vectors (GPT-2 family)' }), pos,
      el('p', { class: 'caption', text: 'GPT-2 adds a learned vector for each position to the token vector before the first layer.' }));
    draw(pos, [{ type: 'heatmap', z: data.position.vectors, y: rows, colorscale: SIGNED, colorbar: { thickness: 10 } }],
      { height: 140 + 24 * rows.length, yaxis: { tickvals: rows, ticktext: labels, autorange: 'reversed' } });
  }

  if (first.pca) {
    const pts = first.pca.points;
    const n = pts.length;
    const ex = first.pca.explained.map((e) => `${(100 * e).toFixed(0)}%`);
    const spread = n <= 3
      ? `With only ${n} vectors, two directions always hold all of their spread (${n} points span at most ${n - 1} direction${n === 2 ? '' : 's'}), so this picture keeps every distance between them.`
      : `These two directions hold ${ex[0]} and ${ex[1]} of the spread; the rest is lost in the picture.`;
    const whose = data.pca ? 'This step\'s' : 'The prompt\'s';
    container.append(el('h3', { text: `${whose} token vectors, projected to 2-D (PCA)` }), pca,
      el('p', { class: 'caption', text: `The two directions along which these vectors differ most. ${spread} ${data.pca ? '' : 'Shown for the prompt (step 0): this step fed only one token.'}` }));
    draw(pca, [{ type: 'scatter', mode: 'markers+text', x: pts.map((p) => p[0]), y: pts.map((p) => p[1]),
      text: first.tokens.map((t) => visible(t.text)), textposition: 'top center', marker: { size: 9, color: '#0072B2' } }],
    { height: 320, xaxis: { title: { text: 'PC 1' }, zeroline: false }, yaxis: { title: { text: 'PC 2' }, zeroline: false } });
  } else {
    container.append(el('p', { class: 'caption', text: 'A 2-D projection needs at least two tokens; this prompt has one.' }));
  }
}
