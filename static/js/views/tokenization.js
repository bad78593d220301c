// Stage 1: the text cut into token chips with their ids.
import { el, tokenChip, visible } from '../dom.js';

export function render(container, ctx) {
  const { run, step } = ctx;
  const h = run.header;
  // The text before this step, then the draft tokens a speculative step checks (not text yet).
  const context = [...h.prompt_tokens, ...run.steps.slice(0, ctx.stepIndex).flatMap((s) => s.emitted)];
  const spec = step.speculative;
  const drafts = step.input_tokens.slice(context.length - step.positions[0]);
  const [start, end] = step.positions;
  const chips = el('div', { class: 'tokens' });
  [...context, ...drafts].forEach((tok, i) => {
    const fed = i >= start && i < end;
    const palette = `tok-palette-${i % 6}`;
    const title = i >= context.length ? `${JSON.stringify(tok.text)}, id ${tok.id}: a draft token, checked in this step` : null;
    chips.append(tokenChip(tok, { cls: fed ? `${palette} new` : 'cached', title }));
  });
  const special = h.prompt_tokens.filter((t) => t.special).length;
  container.append(
    el('p', { class: 'caption' },
      step.kind === 'prefill'
        ? `The prompt: ${[...h.prompt_text].length} characters became ${h.prompt_tokens.length} tokens` +
          (special ? ` (${special} special)` : '') + '. All of them go through the model in this first step.'
        : decodeText(step, ctx.stepIndex, context, drafts, spec)),
    chips,
  );
  if (h.request.chat) {
    container.append(el('p', { class: 'caption' },
      'The chat template wrapped your message in special tokens before tokenizing: ',
      el('code', { text: JSON.stringify(h.prompt_text) })));
  }
  const out = step.emitted;
  container.append(el('p', { class: 'caption' },
    `Detokenizing is the reverse lookup: this step's output id${out.length === 1 ? '' : 's'} ${out.map((t) => t.id).join(', ')} ` +
    `${out.length === 1 ? 'is' : 'are'} turned back into the text ${JSON.stringify(out.map((t) => t.text).join(''))} and appended.`));
  const vocab = ctx.model.vocab_size;
  container.append(el('p', { class: 'caption' },
    `Vocabulary: ${vocab.toLocaleString()} tokens. Hover a chip for its exact text; ␣ is a space, ↵ a newline.`));
}

// What a decode step fed: the token chosen one step earlier (cache on), the whole text (cache
// off), or that token plus the draft tokens to check (speculative).
function decodeText(step, index, context, drafts, spec) {
  const n = step.positions[1] - step.positions[0];
  const reused = step.kv.reused_rows;
  const last = visible(context[context.length - 1].text);
  if (!reused) {
    return `Step ${index} feeds all ${n} tokens (outlined): the KV cache is off, so every earlier token is run through the model again to predict the next one.`;
  }
  const cached = `The ${reused} earlier tokens (faded) are not recomputed: their keys and values come from the KV cache.`;
  if (spec && drafts.length) {
    const accepted = spec.accepted;
    return `Step ${index} feeds ${n} tokens (outlined) in one pass: ${last}, the token chosen in step ${index - 1}, and ` +
      `${drafts.length} draft token${drafts.length === 1 ? '' : 's'} proposed by ${spec.source.replace('-', ' ')} ` +
      `(after the faded text), to be checked; ${accepted} of them ${accepted === 1 ? 'was' : 'were'} accepted. ${cached}`;
  }
  const none = spec ? ` The ${spec.source.replace('-', ' ')} draft proposed nothing this time.` : '';
  return `Step ${index} feeds 1 token (outlined): ${last}, the token chosen in step ${index - 1}. ${cached}${none}`;
}
