// The model card (GET /api/model): the numbers that define this network's architecture.
import { el, fmtBytes } from '../dom.js';
import { FACTS } from '../facts.js';

// The card came with the page (boot JSON); GET /api/model returns the same one.
export function load() {
  return FACTS.model;
}

export function render(container, card) {
  const c = card.config;
  const rows = [
    ['Family', c.arch === 'llama'
      ? 'Llama (RMSNorm, rotary positions, grouped-query attention, SwiGLU)'
      : 'GPT-2 (LayerNorm, learned positions, GELU)'],
    ['Layers (blocks)', c.n_layers],
    ['Attention heads', c.n_kv_heads < c.n_heads
      ? `${c.n_heads} query heads sharing ${c.n_kv_heads} key/value heads` : `${c.n_heads}`],
    ['Width of the residual stream', `${c.d_model} (head size ${c.d_head})`],
    ['Feed-forward width', c.d_ff],
    ['Vocabulary', `${c.vocab_size.toLocaleString()} tokens`],
    ['Context length', `${c.context_length.toLocaleString()} tokens`],
    ['Parameters', `${(card.parameters / 1e6).toFixed(1)} million`],
    ['Weights in memory', `${fmtBytes(card.weight_bytes)} (${card.quantization}); `
      + `the file stores ${card.file_types.join(', ') || 'float'} tensors`],
    ['KV cache per token', `${fmtBytes(card.kv_bytes_per_token)}: 2 (K and V) × ${c.n_layers} layers × `
      + `${c.n_kv_heads} key/value heads × ${c.d_head} × 4 bytes`],
    ['Sizes', 'SI units: 1 kB = 1,000 bytes, 1 MB = 1,000,000 bytes'],
  ];
  const body = el('tbody', {}, ...rows.map(([k, v]) => el('tr', {},
    el('th', { scope: 'row', text: k }), el('td', { text: String(v) }))));
  container.replaceChildren(el('h3', { text: `${card.name}: the model card` }),
    el('table', { class: 'model-card' }, body));
}
