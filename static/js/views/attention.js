// Stage 3: one head's attention matrix with token labels, all heads of the layer, and
// for decode steps which keys came from the KV cache and which were computed now.
import * as api from '../api.js';
import { SEQUENTIAL } from '../constants.js';
import { el, tokenChip, visible } from '../dom.js';
import { draw, paintMatrix, plotDiv, plotToken } from '../plot.js';
import { activate, picker } from './controls.js';

export async function load(ctx) {
  const attn = await api.attention(ctx.run.id, ctx.stepIndex, Math.min(ctx.layer, ctx.model.n_layers - 1));
  return { ...ctx, attn };
}

// The strongest weight of one head's matrix, said in words (the chart's text alternative).
function strongest(z, queries, keys) {
  let best = { q: 0, k: 0, w: -1 };
  z.forEach((row, q) => row.forEach((w, k) => { if (w > best.w) best = { q, k, w }; }));
  return `the strongest weight, ${best.w.toFixed(2)}, is from query ${visible(queries[best.q])} `
    + `to key ${visible(keys[best.k])}`;
}

export function render(container, data) {
  const { attn, model: cfg, setView } = data;
  const layer = attn.layer;
  const head = Math.min(data.head, cfg.n_heads - 1);
  const keyTexts = attn.key_tokens.map((t) => t.text);
  const queryTexts = attn.query_positions.map((p) => keyTexts[p]);
  const keys = keyTexts.map(plotToken);
  const queries = queryTexts.map(plotToken);
  const kx = keys.map((_, i) => i);
  const qy = queries.map((_, i) => i);
  const group = cfg.n_heads / cfg.n_kv_heads;
  const first = Math.floor(head / group) * group;

  container.append(el('div', { class: 'view-controls' },
    picker('Layer', cfg.n_layers, layer, (l) => setView({ layer: l })),
    picker('Head', cfg.n_heads, head, (h) => setView({ head: h })),
    el('span', { class: 'caption', text: cfg.n_kv_heads < cfg.n_heads
      ? `Grouped-query attention: heads ${first}–${first + group - 1} share key/value head `
        + `${Math.floor(head / group)}.`
      : 'Every head has its own keys and values.' })));

  const heat = plotDiv('plot');
  heat.dataset.testid = 'attention-heatmap';
  container.append(heat);
  const z = attn.probs[head];
  draw(heat, [{
    type: 'heatmap', z, x: kx, y: qy, zmin: 0, zmax: 1, colorscale: SEQUENTIAL,
    colorbar: { thickness: 10, title: { text: 'weight' } },
    // hover names the tokens and their positions: [query, its position, key, its position] per cell
    customdata: z.map((row, i) => row.map((_, j) => [queries[i], attn.query_positions[i], keys[j], j])),
    hovertemplate: 'query %{customdata[0]} (#%{customdata[1]}) → key %{customdata[2]} (#%{customdata[3]}): '
      + 'weight %{z:.3f}<extra></extra>',
  }], {
    title: { text: `Layer ${layer}, head ${head}` },
    height: Math.max(220, 120 + 26 * qy.length), margin: { l: 90, r: 20, t: 40, b: 90 },
    xaxis: { tickvals: kx, ticktext: keys, tickangle: -45, title: { text: 'keys (this token and the ones before it)' },
      tickfont: { size: keys.length > 24 ? 9 : undefined } },
    yaxis: { tickvals: qy, ticktext: queries, autorange: 'reversed', title: { text: 'queries' },
      tickfont: { size: qy.length > 24 ? 9 : undefined } },
  }, `Attention heatmap, layer ${layer}, head ${head}: ${qy.length} queries by ${kx.length} keys; `
    + `${strongest(z, queryTexts, keyTexts)}.`);
  const nq = attn.query_positions.length;
  const root = Math.sqrt(cfg.d_head);
  container.append(el('p', { class: 'caption', text: 'Row: the token doing the looking (query). Column: the token '
    + 'looked at (key), which can be the query\'s own token. '
    + `Score = q·k / √${cfg.d_head} = q·k / ${Number.isInteger(root) ? root : root.toFixed(2)}`
    + `${cfg.arch === 'llama' ? ' (q and k after their rotary rotation)' : ''}. `
    + (nq > 1
      ? 'Keys after the query are masked to −∞, so after the softmax they get weight 0 (the empty upper-right '
        + 'part) and every row sums to 1.'
      : 'A single query comes after every key, so nothing is masked; the softmax makes the row sum to 1.') }),
  el('p', { class: 'caption', text: `Each head's output is the weighted average of its ${cfg.d_head}-number value `
    + `vectors. The ${cfg.n_heads} heads' outputs are concatenated (${cfg.n_heads} × ${cfg.d_head} = `
    + `${cfg.n_heads * cfg.d_head} numbers), multiplied by the output matrix W_O (${cfg.n_heads * cfg.d_head} × `
    + `${cfg.d_model}) and added to the residual stream.` }));

  if (data.step.speculative && nq > 1) {
    container.append(el('h3', { text: `Speculative verify pass: ${nq} queries against the cached keys` }),
      keyRow(attn),
      el('p', { class: 'caption', text: `${attn.cached_keys} key/value rows came from the KV cache (faded); `
        + `${nq} were computed in this pass (outlined): the last emitted token and ${nq - 1} draft `
        + `token${nq === 2 ? '' : 's'}, each query seeing the cache and the new rows up to its own. The rows of `
        + 'rejected drafts are thrown away after the check.' }));
  } else if (nq === 1 && attn.cached_keys > 0) {
    container.append(el('h3', { text: 'Decode step: one new query against the cached keys' }), keyRow(attn),
      el('p', { class: 'caption', text: `${attn.cached_keys} key/value rows came from the KV cache (faded); `
        + '1 was computed in this step (outlined).' }));
  } else if (data.step.kind === 'decode') {
    container.append(el('p', { class: 'honest', text: `The KV cache is off: all ${attn.query_positions.length} rows `
      + 'were recomputed in this step, although only the last one is needed for the next token.' }));
  }

  const grid = el('div', { class: 'grid-heads' });
  attn.probs.forEach((m, h) => {
    const canvas = el('canvas', { 'aria-hidden': 'true' });
    paintMatrix(canvas, m);
    grid.append(el('figure', {
      class: h === head ? 'active' : '', title: `show head ${h}`, 'aria-label': `show head ${h}`,
      'aria-current': h === head ? 'true' : null, ...activate(() => setView({ head: h })),
    }, canvas, el('figcaption', { text: `head ${h}` })));
  });
  container.append(el('h3', { text: `All ${cfg.n_heads} heads of layer ${layer}` }), grid,
    el('p', { class: 'caption', text: 'Bright = high weight (viridis). Heads of trained models often specialise: '
      + 'some look mostly at the previous token, some at the first token, some spread out.' }));
}

// The keys of this step as chips: read from the KV cache (faded) or computed now (outlined).
function keyRow(attn) {
  const row = el('div', { class: 'tokens' });
  attn.key_tokens.forEach((t, i) => row.append(tokenChip(t, {
    showId: false, cls: i < attn.cached_keys ? 'cached' : 'new',
    title: i < attn.cached_keys ? 'key/value read from the KV cache' : 'key/value computed in this step' })));
  return row;
}
