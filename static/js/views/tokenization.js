// Stage 1: the text cut into token chips with their ids.
import { el, tokenChip } from '../dom.js';

// Everything is in the run's step summaries: nothing to fetch.
export function load(ctx) {
  return ctx;
}

export function render(container, { run, step, stepIndex, model }) {
  const h = run.header;
  const context = [...h.prompt_tokens, ...run.steps.slice(0, stepIndex).flatMap((s) => s.emitted)];
  const [start, end] = step.positions;
  const chips = el('div', { class: 'tokens' });
  context.forEach((tok, i) => {
    const fed = i >= start && i < end;
    const palette = `tok-palette-${i % 6}`;
    chips.append(tokenChip(tok, { cls: fed ? `${palette} new` : 'cached' }));
  });
  const special = h.prompt_tokens.filter((t) => t.special).length;
  container.append(
    el('p', { class: 'caption' },
      step.kind === 'prefill'
        ? `The prompt: ${[...h.prompt_text].length} characters became ${h.prompt_tokens.length} tokens` +
          (special ? ` (${special} special)` : '') + '. All of them go through the model in this first step.'
        : `Step ${step.index} feeds ${end - start} token${end - start === 1 ? '' : 's'} (outlined). ` +
          (step.kv.reused_rows
            ? `The ${step.kv.reused_rows} earlier tokens (faded) are not recomputed: ` +
              'their keys and values come from the KV cache.'
            : 'The KV cache is off, so every earlier token is run through the model again.')),
    chips,
  );
  if (h.request.chat) {
    container.append(el('p', { class: 'caption' },
      'The chat template wrapped your message in special tokens before tokenizing: ',
      el('code', { text: JSON.stringify(h.prompt_text) })));
  }
  const vocab = model.vocab_size;
  container.append(el('p', { class: 'caption' },
    `Vocabulary: ${vocab.toLocaleString()} tokens. Hover a chip for its exact text; ␣ is a space, ↵ a newline.`));
}
