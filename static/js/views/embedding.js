// Stage 2: token vectors as colour strips, how position enters, and a 2-D PCA of the prompt's vectors.
import * as api from '../api.js';
import { CATEGORY_COLORS, SIGNED } from '../constants.js';
import { el } from '../dom.js';
import { draw, plotDiv, plotToken } from '../plot.js';

// The step's vectors; a decode step has one token, so the PCA comes from step 0 (the prompt).
export async function load(ctx) {
  const emb = await api.embedding(ctx.run.id, ctx.stepIndex);
  const first = emb.pca ? emb : await api.embedding(ctx.run.id, 0);
  return { ...ctx, emb, first };
}

// Rows of a heatmap labelled with the step's tokens.
function tokenRows(labels) {
  const rows = labels.map((_, i) => i);
  return { height: 140 + 24 * rows.length, yaxis: { tickvals: rows, ticktext: labels, autorange: 'reversed' } };
}

export function render(container, { emb, first, model }) {
  const labels = emb.tokens.map((t) => plotToken(t.text));
  const rows = tokenRows(labels);
  const strips = plotDiv('plot small');
  const pos = plotDiv('plot small');
  const pca = plotDiv('plot');
  const width = emb.vectors[0].length;
  container.append(
    el('h3', { text: `Token vectors (${width} numbers each)` }), strips,
    el('p', { class: 'caption', text: 'One row per token fed in this step; colour is the value of each dimension. '
      + `Vector lengths: ${emb.norms.map((n) => n.toFixed(2)).join(', ')}.` }),
    el('p', { class: 'caption', text: `Each row is the token id's row of the ${model.vocab_size.toLocaleString()} × `
      + `${width} embedding table: a lookup, no arithmetic. `
      + (model.tied_embeddings
        ? 'The same table, transposed, is the unembedding that turns the last vector into logits (Prediction).'
        : 'This model has a separate unembedding matrix for the logits (Prediction).') }),
  );
  const norms = emb.norms.map((n) => n.toFixed(2)).join(', ');
  draw(strips, [{ type: 'heatmap', z: emb.vectors, y: rows.yaxis.tickvals, colorscale: SIGNED,
    colorbar: { thickness: 10 } }],
  { ...rows, xaxis: { title: { text: 'dimension' } } },
  `Heatmap: ${labels.length} token vectors of ${width} numbers; lengths ${norms}.`);

  if (emb.position.kind === 'rope') {
    container.append(el('h3', { text: 'Position: rotary angles (Llama family)' }), pos,
      el('p', { class: 'caption', text: 'Nothing is added to the vector. Inside attention, each pair of query/key '
        + `dimensions is rotated by position × frequency (base θ = ${emb.position.theta}). Shown: cos(angle) for `
        + 'each position and pair. Left pairs spin fast, right pairs barely move, so both near and far offsets '
        + 'can be told apart.' }));
    const cos = emb.position.angles.map((row) => row.map(Math.cos));
    draw(pos, [{ type: 'heatmap', z: cos, y: rows.yaxis.tickvals, zmin: -1, zmax: 1, colorscale: SIGNED,
      colorbar: { thickness: 10 } }],
    { ...rows, xaxis: { title: { text: 'dimension pair (fast → slow)' } } },
    `Heatmap: cosine of the rotary angle for ${labels.length} positions and ${cos[0].length} dimension pairs.`);
  } else {
    container.append(el('h3', { text: 'Position: learned position vectors (GPT-2 family)' }), pos,
      el('p', { class: 'caption',
        text: 'GPT-2 adds a learned vector for each position to the token vector before the first layer.' }));
    draw(pos, [{ type: 'heatmap', z: emb.position.vectors, y: rows.yaxis.tickvals, colorscale: SIGNED,
      colorbar: { thickness: 10 } }], rows,
    `Heatmap: the learned position vectors of ${labels.length} positions.`);
  }

  if (first.pca) {
    const pts = first.pca.points;
    const n = pts.length;
    const ex = first.pca.explained.map((e) => `${(100 * e).toFixed(0)}%`);
    // n centred points span at most n - 1 directions: with n <= 3 two components hold everything.
    const spread = n <= 3
      ? `With only ${n} vectors, two directions always hold all of their spread (${n} points span at most `
        + `${n - 1} direction${n === 2 ? '' : 's'}), so this picture keeps every distance between them.`
      : `These two directions hold ${ex[0]} and ${ex[1]} of the spread; the rest is lost in the picture.`;
    const whose = emb.pca ? 'This step\'s' : 'The prompt\'s';
    container.append(el('h3', { text: `${whose} token vectors, projected to 2-D (PCA)` }), pca,
      el('p', { class: 'caption', text: `The two directions along which these vectors differ most. ${spread} `
        + `${emb.pca ? '' : 'Shown for the prompt (step 0): this step fed only one token.'}` }));
    draw(pca, [{ type: 'scatter', mode: 'markers+text', x: pts.map((p) => p[0]), y: pts.map((p) => p[1]),
      text: first.tokens.map((t) => plotToken(t.text)), textposition: 'top center',
      marker: { size: 9, color: CATEGORY_COLORS[0] } }],
    { height: 320, xaxis: { title: { text: 'PC 1' }, zeroline: false },
      yaxis: { title: { text: 'PC 2' }, zeroline: false } },
    `Scatter plot: ${whose.toLowerCase()} ${pts.length} token vectors on their first two principal components.`);
  } else {
    container.append(el('p', { class: 'caption',
      text: 'A 2-D projection needs at least two tokens; this prompt has one.' }));
  }
}
