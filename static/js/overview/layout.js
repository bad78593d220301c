// The overview's geometry and its SVG skeleton, built once per model (the number of layers
// fixes the block columns). Pools of elements (chips, strips, arcs, bars, cells) are made
// here at their largest size; draw.js only changes their attributes and hides the unused.
import { svg } from './svg.js';

export const W = 1280;
export const H = 470;
export const MAX_CHIPS = 12; // context tokens listed (the newest ones)
export const STRIP_ROWS = 10; // embedding strips (the step's last input tokens)
export const STRIP_CELLS = 24; // numbers per strip (llmviz/overview.py EMBED_CELLS)
export const MAX_ARCS = MAX_CHIPS + 1;
export const MAX_OUT = 9; // emitted tokens of one step (1 + up to 8 accepted drafts)
export const MAX_CANDS = 11; // sampling candidates (top 10 + the chosen one)

// x/y of every column and row (viewBox units; the SVG scales to the panel's width)
export const G = {
  header: 30, // stage titles
  chipX: 60, chipW: 112, chipY: 58, chipH: 22, chipStep: 26, // 1. token chips, one row each
  stripX: 190, cellW: 4, stripH: 16, posY: 414, posCellW: 3, // 2. embedding strips; position strip
  blocksX: 306, blocksW: 624, bitsY: 58, mbY: 71, numY: 87, // 3-4. blocks and their labels
  attnY: 92, attnH: 70, residY: 172, ffnY: 182, ffnH: 70, lensY: 266,
  kvY: 336, kvH: 18, lanesY: 384, // KV cache cells; batch lanes' labels
  predX: 945, barX: 1022, barW: 70, barsY: 152, barStep: 22, // 5. prediction
  sampX: 1122, sampW: 26, sampY: 108, sampH: 150, // 6. sampling
  outX: 1188, outW: 78, outY: 150, returnY: 456, returnX: 1274, // output and the return arc
};

export const STAGE_HEADERS = [
  { stage: 'tokenization', x: G.chipX, label: '1 Tokens' },
  { stage: 'embedding', x: G.stripX, label: '2 Embedding' },
  { stage: 'attention', x: G.blocksX, label: '3 Attention ▲' },
  { stage: 'feedforward', x: G.blocksX + 150, label: '4 Feed-forward ▼' },
  { stage: 'prediction', x: G.predX, label: '5 Prediction' },
  { stage: 'sampling', x: G.sampX - 26, label: '6 Sampling' },
];

export function blockX(layer, n) {
  const pitch = G.blocksW / n;
  return {
    x: G.blocksX + layer * pitch,
    w: Math.max(4, pitch - 4),
    cx: G.blocksX + layer * pitch + (pitch - 4) / 2,
    pitch,
  };
}

export const chipRowY = (row) => G.chipY + row * G.chipStep;

function chip(parent, cls) {
  const g = svg('g', { class: `ov-chip ${cls}`, visibility: 'hidden' }, parent);
  const rect = svg('rect', { width: G.chipW, height: G.chipH, rx: 5 }, g);
  const text = svg('text', { x: 7, y: 15.5, class: 'ov-tok' }, g);
  const pos = svg('text', { x: G.chipW - 5, y: 15, class: 'ov-pos', 'text-anchor': 'end' }, g);
  return { g, rect, text, pos };
}

// -> refs: every element draw.js and motion.js update, by role
export function build(container, nLayers) {
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'ov-svg',
    'data-testid': 'overview',
    'data-step': '',
    'data-active-stage': '',
    role: 'group',
    'aria-labelledby': 'overview-title',
    'aria-describedby': 'overview-narration',
  });
  const defs = svg('defs', {}, root);
  const marker = svg(
    'marker',
    {
      id: 'ov-arrow',
      viewBox: '0 0 10 10',
      refX: 8,
      refY: 5,
      markerWidth: 7,
      markerHeight: 7,
      orient: 'auto-start-reverse',
    },
    defs,
  );
  svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'ov-arrowhead' }, marker);
  const refs = {
    root,
    nLayers,
    headers: {},
    chips: [],
    strips: [],
    arcs: [],
    layers: [],
    resid: [],
    bars: [],
    cands: [],
    outs: [],
    kv: [],
    lanes: [],
  };

  // stage headers: click targets for the detail views, highlighted while the pulse is there
  const heads = svg('g', { class: 'ov-headers' }, root);
  for (const h of STAGE_HEADERS) {
    const g = svg(
      'g',
      {
        class: 'ov-head',
        tabindex: 0,
        role: 'button',
        'data-stage': h.stage,
        'aria-label': `${h.label.replace(/[▲▼]/g, '').trim()}: open this stage's detail view`,
      },
      heads,
    );
    const text = svg('text', { x: h.x + 8, y: G.header, text: h.label }, g);
    const pill = svg('rect', { x: h.x, y: G.header - 17, height: 24, rx: 12, width: 10, class: 'ov-pill' });
    g.prepend(pill);
    refs.headers[h.stage] = { g, pill, text };
  }
  refs.blocksLabel = svg(
    'text',
    { x: G.blocksX + G.blocksW, y: G.header, class: 'ov-note', 'text-anchor': 'end' },
    root,
  );
  refs.outLabel = svg('text', { x: G.outX + 22, y: G.header, class: 'ov-colhead', text: 'Output' }, root);

  // return arc: the emitted token goes back into the input (autoregression)
  refs.returnPath = svg('path', { class: 'ov-return', 'marker-end': 'url(#ov-arrow)' }, root);
  refs.returnLabel = svg('text', { x: 700, y: G.returnY - 6, class: 'ov-note', 'text-anchor': 'middle' }, root);

  // 1. tokens, with attention arcs on their left
  refs.arcGroup = svg('g', { class: 'ov-arcs' }, root);
  for (let i = 0; i < MAX_ARCS; i += 1)
    refs.arcs.push(svg('path', { class: 'ov-arc', visibility: 'hidden' }, refs.arcGroup));
  refs.earlier = svg('text', { x: G.chipX + 4, y: G.chipY - 6, class: 'ov-note' }, root);
  const chips = svg('g', { class: 'ov-chips', 'data-stage': 'tokenization' }, root);
  for (let i = 0; i < MAX_CHIPS; i += 1) refs.chips.push(chip(chips, 'ctx'));

  // 2. embedding strips, one per input token, and the position information
  const strips = svg('g', { class: 'ov-strips', 'data-stage': 'embedding' }, root);
  for (let r = 0; r < STRIP_ROWS; r += 1) {
    const g = svg('g', { visibility: 'hidden' }, strips);
    const cells = [];
    for (let c = 0; c < STRIP_CELLS; c += 1)
      cells.push(svg('rect', { x: G.stripX + c * G.cellW, width: G.cellW, height: G.stripH }, g));
    svg('rect', { x: G.stripX, width: STRIP_CELLS * G.cellW, height: G.stripH, class: 'ov-frame' }, g);
    refs.strips.push({ g, cells });
  }
  refs.posGroup = svg('g', {}, strips);
  refs.posLabel = [
    svg('text', { x: G.stripX, y: G.posY - 20, class: 'ov-note' }, refs.posGroup),
    svg('text', { x: G.stripX, y: G.posY - 6, class: 'ov-note' }, refs.posGroup),
  ];
  refs.posCells = [];
  const posG = refs.posGroup;
  for (let c = 0; c < 32; c += 1)
    refs.posCells.push(svg('rect', { x: G.stripX + c * G.posCellW, y: G.posY, width: G.posCellW, height: 12 }, posG));

  // the residual stream: one segment into every block and one out of the last
  const resid = svg('g', { class: 'ov-resid' }, root);
  for (let i = 0; i <= nLayers; i += 1) refs.resid.push(svg('line', { y1: G.residY, y2: G.residY }, resid));
  refs.lanesGroup = svg('g', { class: 'ov-lanes' }, root);

  // 3-4. the blocks: attention above the stream, feed-forward below it
  // row labels right of the blocks (the embedding strips fill the space on their left)
  const right = G.blocksX + G.blocksW + 4;
  svg('text', { x: right, y: G.bitsY, class: 'ov-rowlabel', text: '← bits/weight' }, root);
  svg('text', { x: right, y: G.mbY, class: 'ov-rowlabel', text: '← MB per block' }, root);
  svg('text', { x: right, y: G.numY, class: 'ov-rowlabel', text: '← layer' }, root);
  svg('text', { x: right, y: G.lensY + 14, class: 'ov-rowlabel', text: '← lens top-1' }, root);
  refs.blocks = svg(
    'g',
    {
      class: 'ov-blocks',
      tabindex: 0,
      role: 'slider',
      'aria-valuemin': 0,
      'aria-valuemax': nLayers - 1,
      'aria-valuenow': 0,
      'aria-label':
        'Layer for the attention arcs: left and right arrows pick a layer, ' +
        'Enter opens its attention, F its feed-forward',
    },
    root,
  );
  for (let i = 0; i < nLayers; i += 1) {
    const { x, w, cx } = blockX(i, nLayers);
    const g = svg('g', { class: 'ov-layer', 'data-testid': 'overview-layer', 'data-layer': i }, refs.blocks);
    const title = svg('title', {}, g);
    const bits = svg('text', { x: cx, y: G.bitsY, class: 'ov-num', 'text-anchor': 'middle' }, g);
    const mb = svg('text', { x: cx, y: G.mbY, class: 'ov-num', 'text-anchor': 'middle' }, g);
    svg('text', { x: cx, y: G.numY, class: 'ov-num ov-layernum', 'text-anchor': 'middle', text: i }, g);
    const attn = svg(
      'rect',
      { x, y: G.attnY, width: w, height: G.attnH, rx: 3, class: 'ov-attn', 'data-stage': 'attention' },
      g,
    );
    const ffn = svg(
      'rect',
      { x, y: G.ffnY, width: w, height: G.ffnH, rx: 3, class: 'ov-ffn', 'data-stage': 'feedforward' },
      g,
    );
    const act = svg('rect', { x: x + 2, width: Math.max(1, w - 4), class: 'ov-act', 'pointer-events': 'none' }, g);
    const lens = svg(
      'text',
      {
        class: 'ov-lens',
        'data-testid': 'overview-lens',
        'text-anchor': 'end',
        transform: `translate(${cx + 4},${G.lensY}) rotate(-55)`,
      },
      g,
    );
    refs.layers.push({ g, title, bits, mb, attn, ffn, act, lens, cx });
  }

  // KV cache: one cell per position held after the step
  refs.kvGroup = svg('g', { class: 'ov-kv', 'data-stage': 'attention' }, root);
  refs.kvCells = svg('g', {}, refs.kvGroup);
  refs.kvLegend = [0, 1, 2].map((i) => svg('text', { x: G.predX, y: G.kvY + 4 + 15 * i, class: 'ov-note' }, root));

  // 5. prediction: final norm + unembedding, then the top-5 bars
  const pred = svg('g', { class: 'ov-pred', 'data-stage': 'prediction' }, root);
  svg('rect', { x: G.predX, y: G.attnY + 2, width: 152, height: 48, rx: 4, class: 'ov-box' }, pred);
  refs.unembed = [0, 1, 2].map((i) =>
    svg('text', { x: G.predX + 6, y: G.attnY + 16 + 14 * i, class: 'ov-small' }, pred),
  );
  for (let i = 0; i < 5; i += 1) {
    const y = G.barsY + i * G.barStep;
    refs.bars.push({
      label: svg('text', { x: G.barX - 5, y: y + 14, class: 'ov-tok', 'text-anchor': 'end' }, pred),
      bar: svg('rect', { x: G.barX, y: y + 2, height: 17, class: i ? 'ov-bar' : 'ov-bar top' }, pred),
      text: svg('text', { x: G.barX + 3, y: y + 14.5, class: 'ov-small' }, pred),
    });
  }

  // 6. sampling: the cumulative bar of the final distribution and the draw u
  const samp = svg('g', { class: 'ov-samp', 'data-stage': 'sampling' }, root);
  for (let i = 0; i < MAX_CANDS; i += 1)
    refs.cands.push(svg('rect', { x: G.sampX, width: G.sampW, class: 'ov-cand', visibility: 'hidden' }, samp));
  svg('rect', { x: G.sampX, y: G.sampY, width: G.sampW, height: G.sampH, class: 'ov-frame' }, samp);
  refs.uLine = svg('line', { x1: G.sampX - 8, x2: G.sampX + G.sampW + 8, class: 'ov-u', visibility: 'hidden' }, samp);
  refs.uText = svg(
    'text',
    { x: G.sampX + G.sampW / 2, y: G.sampY - 8, class: 'ov-small', 'text-anchor': 'middle' },
    samp,
  );
  refs.sampText = svg(
    'text',
    { x: G.sampX + G.sampW / 2, y: G.sampY + G.sampH + 16, class: 'ov-small', 'text-anchor': 'middle' },
    samp,
  );

  // output: the emitted token(s)
  const out = svg('g', { class: 'ov-out', 'data-stage': 'sampling' }, root);
  for (let i = 0; i < MAX_OUT; i += 1) {
    const c = chip(out, 'out');
    setAttrsOut(c, i);
    refs.outs.push(c);
  }
  refs.outNote = [0, 1].map(() => svg('text', { x: G.outX + 2, class: 'ov-note ov-outnote' }, out));
  // the pulse and the token flying back (both hidden under reduced motion)
  refs.fly = chip(root, 'fly');
  refs.dot = svg('circle', { r: 8, class: 'ov-dot', visibility: 'hidden' }, root);
  container.replaceChildren(root);
  for (const h of Object.values(refs.headers))
    h.pill.setAttribute('width', (h.text.getComputedTextLength() + 16).toFixed(0));
  return refs;
}

function setAttrsOut(c, i) {
  c.rect.setAttribute('width', G.outW);
  c.pos.remove();
  c.g.setAttribute('transform', `translate(${G.outX},${G.outY + i * G.chipStep})`);
  c.text.setAttribute('data-testid', 'overview-output');
}
