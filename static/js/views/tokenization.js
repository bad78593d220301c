// Stage 1: the text cut into token chips with their ids.
import { el, tokenChip, visible } from '../dom.js';

// Everything is in the run's step summaries: nothing to fetch.
export function load(ctx) {
  return ctx;
}

export function render(container, { run, step, stepIndex, model }) {
  const h = run.header;
  // The text before this step, then the draft tokens a speculative step checks (not text yet).
  const context = [...h.prompt_tokens, ...run.steps.slice(0, stepIndex).flatMap((s) => s.emitted)];
  const drafts = step.input_tokens.slice(context.length - step.positions[0]);
  const [start, end] = step.positions;
  const chips = el('div', { class: 'tokens' });
  [...context, ...drafts].forEach((tok, i) => {
    const fed = i >= start && i < end;
    const palette = `tok-palette-${i % 6}`;
    const title = i >= context.length ? `${JSON.stringify(tok.text)}, id ${tok.id}: a draft token, checked in this step`
      : null;
    chips.append(tokenChip(tok, { cls: fed ? `${palette} new` : 'cached', title }));
  });
  const special = h.prompt_tokens.filter((t) => t.special).length;
  container.append(
    el('p', { class: 'caption' },
      step.kind === 'prefill'
        ? `The prompt: ${[...h.prompt_text].length} characters became ${h.prompt_tokens.length} tokens` +
          (special ? ` (${special} special)` : '') + '. All of them go through the model in this first step.'
        : decodeText(step, stepIndex, context, drafts)),
    chips,
  );
  if (h.request.chat) {
    container.append(el('p', { class: 'caption' },
      'The chat template wrapped your message in special tokens before tokenizing: ',
      el('code', { text: JSON.stringify(h.prompt_text) })));
  }
  const out = step.emitted;
  const s = out.length === 1 ? '' : 's';
  container.append(el('p', { class: 'caption' },
    `Detokenizing is the reverse lookup: this step's output id${s} ${out.map((t) => t.id).join(', ')} `
    + `${s ? 'are' : 'is'} turned back into the text ${JSON.stringify(out.map((t) => t.text).join(''))} `
    + 'and appended.'));
  const vocab = model.vocab_size;
  container.append(el('p', { class: 'caption' },
    `Vocabulary: ${vocab.toLocaleString()} tokens. Hover a chip for its exact text; ␣ is a space, ↵ a newline.`));
}

// What a decode step fed: the token chosen one step earlier (cache on), the whole text (cache
// off), or that token plus the draft tokens to check (speculative).
function decodeText(step, index, context, drafts) {
  const n = step.positions[1] - step.positions[0];
  const reused = step.kv.reused_rows;
  const spec = step.speculative;
  const last = visible(context[context.length - 1].text);
  if (!reused) {
    return `Step ${index} feeds all ${n} tokens (outlined): the KV cache is off, so every earlier token is run `
      + 'through the model again to predict the next one.';
  }
  const cached = `The ${reused} earlier tokens (faded) are not recomputed: their keys and values come from the `
    + 'KV cache.';
  const source = spec ? spec.source.replace('-', ' ') : '';
  if (spec && drafts.length) {
    const accepted = spec.accepted;
    return `Step ${index} feeds ${n} tokens (outlined) in one pass: ${last}, the token chosen in step ${index - 1}, `
      + `and ${drafts.length} draft token${drafts.length === 1 ? '' : 's'} proposed by ${source} (after the faded `
      + `text), to be checked; ${accepted} of them ${accepted === 1 ? 'was' : 'were'} accepted. ${cached}`;
  }
  const none = spec ? ` The ${source} draft proposed nothing this time.` : '';
  return `Step ${index} feeds 1 token (outlined): ${last}, the token chosen in step ${index - 1}. ${cached}${none}`;
}
