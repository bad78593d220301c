// The four optimizations: what each does on this hardware (in plain words), and the side-by-side
// view of a batch.
import { el, fmtBytes, tokenChip } from '../dom.js';
import { FACTS } from '../facts.js';

// What each optimization does in this engine, with this model's own sizes and this machine.
export function explain(facts) {
  const c = facts.model.config;
  const kv = facts.model.kv_bytes_per_token;
  const fp32 = facts.quantizations.find((q) => q.name === 'fp32');
  const smaller = facts.quantizations.filter((q) => q.name !== 'fp32').map((q) => `${q.label}: `
    + `${fmtBytes(q.weight_bytes)}, ${q.bits_per_weight} bits per weight, `
    + `${(fp32.weight_bytes / q.weight_bytes).toFixed(1)}× smaller`);
  const m = facts.machine;
  const gqa = c.n_kv_heads < c.n_heads
    ? `, ${c.n_heads / c.n_kv_heads}× less than with one key/value head per query head (grouped-query attention)` : '';
  return [
    ['Prefill and decode', 'The first step (prefill) runs the whole prompt at once: each weight read from memory '
      + 'serves every prompt token, so arithmetic is the limit (compute-bound). Each later step (decode) handles '
      + `one token: all ${fmtBytes(fp32.weight_bytes)} of weights are read to do 2 operations per weight, so memory `
      + 'bandwidth is the limit (memory-bound). Each optimization below works on one side of this.'],
    ['KV cache', 'The keys and values of earlier tokens are stored after they are computed: 2 (K and V) × '
      + `${c.n_layers} layers × ${c.n_kv_heads} key/value heads × ${c.d_head} numbers × 4 bytes = `
      + `${kv.toLocaleString('en')} bytes (${fmtBytes(kv)}) per token${gqa}. A decode step then computes q, k and v `
      + 'for one new token and attends over the stored rows. Turn it off and every step runs all n tokens of the '
      + 'text through the model again (weight products over n rows, attention over about n²/2 pairs per head), '
      + 'so the latency line climbs with every token.'],
    ['Quantization', `The weights are stored with fewer bits plus float32 scales (int4: a scale and a minimum per `
      + `32 weights). For this model: fp32 `
      + `${fmtBytes(fp32.weight_bytes)}; ${smaller.join('; ')}. A decode step reads every weight once, so fewer `
      + 'bytes per weight make it faster, provided the weights are multiplied in their packed form: llmviz\'s fused '
      + 'kernels (compiled with numba) turn the packed codes into numbers inside the processor and multiply at '
      + 'once, never writing a float32 copy. A long prompt\'s prefill expands the weights to float32 block by '
      + 'block instead, so the gain shows on the tokens after the first. The timing panel measures it here: '
      + 'compare the tokens per second of an fp32 run and a quantized run of the same prompt. The model\'s '
      + 'probabilities shift a little with int8 and more with int4 (docs/optimizations.md measures how much).'],
    ['Batching', 'Several prompts are decoded together, one row each, in one forward pass per step; every row keeps '
      + 'its own KV cache, positions and seed, and attention runs row by row. For float32 weights the engine '
      + 'picks the faster product on a CPU: up to 4 rows, one matrix-vector product per prompt (each reads the '
      + 'weights from memory again); from 5 rows on, one matrix product for all rows, so one read of the weights '
      + 'serves them all. Prompts are prefilled one at a time. The gain shows as more tokens per second in '
      + 'total, mostly from 5 prompts on.'
      + (m ? ` This server has ${m.cpus} CPU core${m.cpus === 1 ? '' : 's'} (${m.description}).` : '')],
    ['Speculative decoding', 'A cheap draft guesses a few tokens ahead (prompt lookup copies what followed the same '
      + 'words earlier in the text; early exit runs the model\'s own first layers). The model then checks them '
      + 'in one pass over the last token plus the drafts, against the cached keys, keeps the drafts it agrees '
      + 'with and adds one token of its own. A draft token is accepted with probability min(1, p/q), p and q '
      + 'being the model\'s and the draft\'s probabilities for it; after a rejection the token is drawn from the '
      + 'residual norm(max(0, p − q)). With greedy decoding (temperature 0) the output is identical to the '
      + 'model\'s alone; with sampling it follows the same probability distribution, though not the same text '
      + 'for a given seed. It pays off only when most drafts are accepted: the timing panel shows the '
      + 'acceptance rate and the measured speed-up.'],
  ];
}

export function renderExplain(container) {
  container.replaceChildren(el('h2', { text: 'Inference optimizations, and what they do here' }),
    ...explain(FACTS).map(([title, text]) => el('div', {}, el('h3', { text: title }), el('p', { text }))));
}

// Several runs from one batch, side by side.
export function renderBatch(container, batch, onOpen) {
  container.hidden = false;
  container.replaceChildren(...batch.runs.map((run, i) => {
    const chips = run.tokens.map((t) => tokenChip(t, { showId: false, cls: 'gen' }));
    const tokens = el('div', { class: 'tokens' }, ...chips);
    return el('div', { class: 'col' },
      el('strong', { text: `Prompt ${i + 1}: ` }), el('span', { text: run.request.prompt }), tokens,
      el('button', { type: 'button', onclick: () => onOpen(run.id), text: 'Look inside' }));
  }));
}
