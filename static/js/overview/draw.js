// Puts one step's data (GET /api/runs/<id>/steps/<s>/overview, llmviz/overview.py) into the
// skeleton from layout.js: attributes and texts change in place, nothing is rebuilt.
import { fmtBytes } from '../dom.js';
import { G, MAX_CHIPS, STRIP_CELLS, blockX, chipRowY } from './layout.js';
import { diverging, pct, setAttrs, svg, toggle, tokenLabel } from './svg.js';

const MB = 1e6; // SI megabytes, as everywhere on the page (dom.js fmtBytes)
const fmtBits = (b) => (b >= 10 ? b.toFixed(0) : b.toFixed(1));
const fmtMB = (n) => (n / MB >= 10 ? (n / MB).toFixed(0) : (n / MB).toFixed(1));

// A draft's place among the step's inputs: [last token, draft 1, ..., draft γ]
function draftIndex(ov, pos) {
  return ov.speculative ? pos - ov.positions[0] - 1 : -1;
}

// -> geometry the motion needs: {fedY, stripY, outY, uY, slotY, nOut}
export function update(refs, data) {
  const { ov } = data;
  const geo = {};
  drawTokens(refs, ov, geo);
  drawEmbedding(refs, ov, geo);
  drawBlocks(refs, ov);
  drawKV(refs, ov);
  drawPrediction(refs, ov);
  drawSampling(refs, ov, geo);
  drawOutput(refs, ov, geo);
  drawLanes(refs, data.lanes);
  drawReturn(refs, geo, data);
  markSelection(refs, data.stage, data.layer);
  return geo;
}

function drawTokens(refs, ov, geo) {
  const att = ov.attention;
  const keys = att.keys; // every position the focus query can see
  const first = Math.max(0, keys.length - MAX_CHIPS);
  const [start] = ov.positions;
  geo.rows = keys.length - first;
  geo.rowOf = (pos) => pos - first;
  refs.earlier.textContent = first ? `+${first} earlier` : '';
  refs.chips.forEach((c, r) => {
    const pos = first + r;
    if (pos >= keys.length) {
      setAttrs(c.g, { visibility: 'hidden', 'data-testid': null, 'data-accepted': null });
      return;
    }
    const tok = keys[pos];
    const d = draftIndex(ov, pos);
    const draft = d >= 0 ? ov.drafts[d] : null;
    setAttrs(c.g, {
      visibility: 'visible',
      transform: `translate(${G.chipX},${chipRowY(r)})`,
      'data-pos': pos,
      'data-testid': draft ? 'overview-draft' : null,
      'data-accepted': draft ? String(draft.accepted) : null,
    });
    setAttrs(c.text, { text: tokenLabel(tok, 11) });
    setAttrs(c.pos, { text: draft ? (draft.accepted ? '✓ kept' : '✗ out') : `#${pos}` });
    c.g.setAttribute(
      'class',
      [
        'ov-chip',
        'ctx',
        pos >= start ? 'fed' : 'cached',
        tok.special ? 'special' : '',
        pos === att.query_position ? 'query' : '',
        draft ? `draft ${draft.accepted ? 'acc' : 'rej'}` : '',
      ]
        .join(' ')
        .trim(),
    );
  });
  geo.fedY = chipRowY(Math.max(0, Math.min(geo.rows - 1, att.query_position - first))) + G.chipH / 2;
  geo.slotY = chipRowY(Math.min(geo.rows, MAX_CHIPS)) + G.chipH / 2;
  // arcs: where the focus query looks in the selected layer (mean over heads); width = weight
  const qy = geo.fedY;
  const hidden = att.weights.slice(0, first).reduce((a, b) => a + b, 0);
  refs.arcs.forEach((arc, i) => {
    const pos = i === 0 ? -1 : first + i - 1; // arc 0: everything before the listed chips
    const w = pos < 0 ? hidden : att.weights[pos];
    if ((pos < 0 && !first) || pos >= keys.length || pos === att.query_position || !(w > 0.005)) {
      setAttrs(arc, { visibility: 'hidden' });
      return;
    }
    const ky = pos < 0 ? G.chipY - 10 : chipRowY(pos - first) + G.chipH / 2;
    const x = G.chipX - 2;
    const bulge = Math.min(x - 4, 10 + 0.45 * Math.abs(qy - ky));
    setAttrs(arc, {
      visibility: 'visible',
      d: `M${x},${qy} C${x - bulge},${qy} ${x - bulge},${ky} ${x},${ky}`,
      'stroke-width': (1 + 11 * w).toFixed(2),
      'stroke-opacity': (0.35 + 0.65 * w).toFixed(2),
    });
  });
}

function drawEmbedding(refs, ov, geo) {
  const e = ov.embedding;
  geo.stripY = geo.fedY;
  refs.strips.forEach((s, j) => {
    const pos = e.first_position + j;
    const row = geo.rowOf(pos);
    if (j >= e.strips.length || row < 0 || row >= geo.rows) {
      setAttrs(s.g, { visibility: 'hidden' });
      return;
    }
    setAttrs(s.g, { visibility: 'visible', transform: `translate(0,${chipRowY(row) + 3})` });
    s.cells.forEach((cell, c) => setAttrs(cell, { fill: diverging(e.strips[j][c] / e.scale) }));
    if (pos === ov.attention.query_position) geo.stripY = chipRowY(row) + 3 + G.stripH / 2;
  });
  const p = e.position;
  const values = p.kind === 'rope' ? p.cos : p.values;
  const scale = p.kind === 'rope' ? 1 : Math.max(...values.map(Math.abs), 1e-6);
  refs.posCells.forEach((cell, i) =>
    setAttrs(
      cell,
      i < values.length ? { visibility: 'visible', fill: diverging(values[i] / scale) } : { visibility: 'hidden' },
    ),
  );
  refs.posLabel[0].textContent = p.kind === 'rope' ? `RoPE at #${p.position}:` : `position #${p.position}:`;
  refs.posLabel[1].textContent = p.kind === 'rope' ? `cos of ${values.length} angles` : 'learned vector';
}

function drawBlocks(refs, ov) {
  const L = ov.layers.length;
  const maxAct = Math.max(...ov.layers.map((l) => l.ffn_mean_abs), 1e-9);
  const norms = [ov.embedding.focus_norm, ...ov.layers.map((l) => l.resid_norm)];
  const maxNorm = Math.max(...norms, 1e-9);
  const finalId = ov.top[0].id;
  ov.layers.forEach((l, i) => {
    const r = refs.layers[i];
    setAttrs(r.bits, { text: fmtBits(l.bits_per_weight) });
    setAttrs(r.mb, { text: fmtMB(l.weight_bytes) });
    setAttrs(r.lens, { text: tokenLabel(l.lens) });
    toggle(r.lens, 'match', l.lens.id === finalId);
    const h = Math.max(1, (G.ffnH - 4) * (l.ffn_mean_abs / maxAct));
    setAttrs(r.act, { y: (G.ffnY + G.ffnH - 2 - h).toFixed(1), height: h.toFixed(1) });
    setAttrs(r.title, {
      text:
        `Layer ${i}: the logit lens's top token is ${tokenLabel(l.lens)} (${pct(l.lens.prob)}); ` +
        `residual stream norm ${l.resid_norm.toFixed(1)}; ` +
        `feed-forward mean |activation| ${l.ffn_mean_abs.toFixed(3)}; ` +
        `weights ${fmtBytes(l.weight_bytes)} at ${l.bits_per_weight} bits each. ` +
        'Click the upper half for its attention, the lower for its feed-forward.',
    });
  });
  // the residual stream: thickness follows its recorded norm after each layer
  refs.resid.forEach((line, i) => {
    const x1 = i === 0 ? G.stripX + STRIP_CELLS * G.cellW + 6 : blockX(i - 1, L).cx;
    const x2 = i === L ? G.predX : blockX(i, L).cx;
    setAttrs(line, { x1, x2, 'stroke-width': (2 + 12 * Math.sqrt(norms[i] / maxNorm)).toFixed(2) });
  });
  const q = ov.model.quantization;
  refs.blocksLabel.textContent = `${L} blocks · weights ${q}`;
}

function drawKV(refs, ov) {
  const kv = ov.kv;
  const total = kv.held + kv.discarded;
  const pitch = Math.min(14, G.blocksW / Math.max(total, 1));
  const w = pitch > 4 ? pitch - 2 : Math.max(pitch - 0.3, 0.4);
  const cells = refs.kvCells;
  while (cells.childElementCount < total) svg('rect', {}, cells);
  while (cells.childElementCount > total) cells.lastElementChild.remove();
  const firstComputed = kv.held - kv.computed;
  [...cells.children].forEach((cell, i) => {
    const x = (G.blocksX + i * pitch).toFixed(2);
    if (i >= kv.held) {
      // rows of rejected drafts, dropped again
      setAttrs(cell, {
        x,
        y: G.kvY,
        width: w.toFixed(2),
        height: G.kvH,
        class: 'ov-kv-cell discarded',
        'data-testid': null,
        'data-state': null,
      });
      return;
    }
    const computed = i >= firstComputed;
    setAttrs(cell, {
      x,
      y: computed ? G.kvY : G.kvY + 6,
      width: w.toFixed(2),
      height: computed ? G.kvH : G.kvH - 6,
      class: `ov-kv-cell ${computed ? 'computed' : 'reused'}`,
      'data-testid': 'overview-kv-cell',
      'data-state': computed ? 'computed' : 'reused',
    });
  });
  refs.kvLegend[0].textContent = kv.on
    ? `← KV cache: ${kv.held} positions, ${fmtBytes(kv.bytes)}`
    : `← KV cache off: all ${kv.held} positions recomputed`;
  refs.kvLegend[1].textContent = `tall: ${kv.computed} computed in this step · short: ${kv.reused} reused`;
  refs.kvLegend[2].textContent = kv.discarded ? `dashed: ${kv.discarded} rows of rejected drafts dropped` : '';
}

function drawPrediction(refs, ov) {
  const u = ov.unembedding;
  refs.unembed[0].textContent = 'final norm + unembedding';
  refs.unembed[1].textContent = `${ov.model.d_model} → ${ov.model.vocab_size.toLocaleString('en')} scores`;
  refs.unembed[2].textContent = `${fmtMB(u.bytes)} MB · ${fmtBits(u.bits_per_weight)} bits/weight`;
  refs.bars.forEach((b, i) => {
    const t = ov.top[i];
    if (!t) {
      setAttrs(b.bar, { width: 0 });
      setAttrs(b.label, { text: '' });
      setAttrs(b.text, { text: '' });
      return;
    }
    setAttrs(b.label, { text: tokenLabel(t, 9) });
    setAttrs(b.bar, { width: Math.max(1, G.barW * t.prob).toFixed(1) });
    setAttrs(b.text, { text: pct(t.prob) });
  });
}

// The draw's walk (the summary's sampling.draw): each kept token owns the interval [start, end)
// of [0, 1) in the order the sampler visits them; u lands in the chosen token's interval.
// Greedy decoding draws nothing: the whole bar is the top token.
function drawSampling(refs, ov, geo) {
  const s = ov.sampling;
  const walk = s.draw || [{ ...s.chosen, start: 0, end: 1 }];
  geo.uY = G.sampY + G.sampH / 2;
  refs.cands.forEach((rect, i) => {
    const c = walk[i];
    if (!c) {
      setAttrs(rect, { visibility: 'hidden' });
      return;
    }
    const y = G.sampY + c.start * G.sampH;
    const h = (c.end - c.start) * G.sampH;
    const chosen = c.id === s.chosen.id;
    setAttrs(rect, {
      visibility: 'visible',
      y: y.toFixed(2),
      height: Math.max(0.5, h).toFixed(2),
      class: `ov-cand ${chosen ? 'chosen' : ''} ${i % 2 ? 'odd' : ''}`,
    });
    if (chosen) geo.uY = y + h / 2;
  });
  const drawn = s.draw !== null && s.draw !== undefined && s.u !== null;
  if (drawn) geo.uY = G.sampY + s.u * G.sampH;
  setAttrs(refs.uLine, { visibility: drawn ? 'visible' : 'hidden', y1: geo.uY.toFixed(1), y2: geo.uY.toFixed(1) });
  refs.uText.textContent = drawn ? `u = ${s.u.toFixed(3)}` : 'greedy';
  refs.sampText.textContent = drawn ? `${s.kept} kept` : 'top-1 taken';
}

function drawOutput(refs, ov, geo) {
  const spec = ov.speculative;
  const nAcc = spec ? spec.accepted : 0;
  refs.outs.forEach((c, i) => {
    const t = ov.emitted[i];
    if (!t) {
      setAttrs(c.g, { visibility: 'hidden' });
      setAttrs(c.text, { 'data-testid': null });
      return;
    }
    setAttrs(c.g, { visibility: 'visible' });
    const label = tokenLabel(t);
    // the exact token text stays in the DOM; a long one is squeezed to fit the chip
    setAttrs(c.text, {
      text: label,
      'data-testid': 'overview-output',
      textLength: [...label].length > 8 ? G.outW - 12 : null,
      lengthAdjust: [...label].length > 8 ? 'spacingAndGlyphs' : null,
    });
    c.g.setAttribute(
      'class',
      `ov-chip out ${spec ? (i < nAcc ? 'acc' : 'final') : ''} ${t.special ? 'special' : ''}`.trim(),
    );
  });
  geo.nOut = Math.min(ov.emitted.length, refs.outs.length);
  geo.outY = G.outY + (geo.nOut - 1) * G.chipStep + G.chipH / 2;
  // a speculative step: the accepted drafts, then the token the model chose itself
  const note = spec && ov.drafts.length ? [`${nAcc}/${ov.drafts.length} drafts ✓`, '+ own token'] : ['', ''];
  refs.outNote.forEach((t, i) => setAttrs(t, { y: geo.outY + G.chipH / 2 + 14 + 14 * i, text: note[i] }));
}

function drawLanes(refs, lanes) {
  const group = refs.lanesGroup;
  while (group.childElementCount < lanes.length) {
    const g = svg('g', { 'data-testid': 'overview-lane', class: 'ov-lane' }, group);
    svg('line', { x1: G.blocksX - 4, x2: G.blocksX + G.blocksW }, g);
    svg('text', { x: G.blocksX, class: 'ov-small' }, g);
  }
  while (group.childElementCount > lanes.length) group.lastElementChild.remove();
  lanes.forEach((lane, k) => {
    const g = group.children[k];
    const y = G.residY + (k - (lanes.length - 1) / 2) * 9;
    setAttrs(g, { 'data-lane': k, class: `ov-lane lane-${k % 4}${lane.own ? ' own' : ''}` });
    setAttrs(g.children[0], { y1: y, y2: y });
    setAttrs(g.children[1], {
      y: G.lanesY + k * 16,
      text:
        `row ${k + 1}${lane.own ? ' (this run)' : ''}: ` +
        `${tokenLabel(lane.input, 14)} → ${tokenLabel(lane.output, 14)}   “${lane.prompt.slice(0, 28)}”`,
    });
  });
}

function drawReturn(refs, geo, data) {
  const x0 = G.returnX;
  const y0 = geo.outY + G.chipH / 2;
  const x1 = G.chipX + G.chipW / 2;
  const r = 12;
  const Y = G.returnY;
  setAttrs(refs.returnPath, {
    d:
      `M${x0},${y0} V${Y - r} Q${x0},${Y} ${x0 - r},${Y} ` +
      `H${x1 + r} Q${x1},${Y} ${x1},${Y - r} V${geo.slotY + G.chipH / 2 + 2}`,
  });
  refs.returnLabel.textContent = data.last
    ? 'the last step: the run ends with this token'
    : "the emitted token is appended to the text and goes back in as the next step's input";
}

// The stage and layer open in the detail view below (outlined; the pulse fills instead).
export function markSelection(refs, stage, layer) {
  for (const [key, h] of Object.entries(refs.headers)) toggle(h.g, 'sel', key === stage);
  refs.layers.forEach((r, i) => toggle(r.g, 'sel', i === layer));
  const lens = refs.layers[layer] ? refs.layers[layer].lens.textContent : '';
  setAttrs(refs.blocks, { 'aria-valuenow': layer, 'aria-valuetext': `layer ${layer}, lens top-1 ${lens}` });
}
