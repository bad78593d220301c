// The four optimizations: what each does on this hardware (in plain words), and the side-by-side
// view of a batch.
import { el, tokenChip } from '../dom.js';

const EXPLAIN = [
  ['KV cache', 'Keys and values of earlier tokens are stored after they are computed, so each new token needs one '
    + 'new row per layer instead of a pass over the whole text. Turn it off and watch the latency climb '
    + 'with every token: each step redoes all earlier positions.'],
  ['Quantization', 'Weights are stored with fewer bits (int8: 8 bits per weight plus scales; int4: 4 bits). Memory '
    + 'shrinks about 4× and 8×. Here the NumPy engine expands them back to float32 block by block before '
    + 'multiplying: that saves memory but costs extra work, so on this CPU quantized runs are slower, '
    + 'not faster. Real int8/int4 kernels unpack inside the multiplication and gain speed as well.'],
  ['Batching', 'Several prompts go through the model together: each weight matrix is read once per step for all '
    + 'of them. On a GPU this fills idle compute; on this 2-core CPU the gain is smaller but visible as '
    + 'more tokens per second in total.'],
  ['Speculative decoding', 'A cheap draft guesses a few tokens ahead (here: copying text that followed the '
    + 'same words earlier in the prompt, or the model\'s own first layers); the full model checks all '
    + 'guesses in one pass and keeps the ones it agrees with. The output is exactly what the model alone '
    + 'would produce.'],
];

export function renderExplain(container) {
  container.replaceChildren(el('h2', { text: 'Inference optimizations, and what they do here' }),
    ...EXPLAIN.map(([title, text]) => el('div', {}, el('h3', { text: title }), el('p', { text }))));
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
