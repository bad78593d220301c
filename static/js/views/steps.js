// The growing "Generation Steps" list and the text-so-far chips (one per generated token).
// Both are keyboard-operable: a step is a button, a generated chip takes Tab, Enter and Space.
import { el, fmtMs, pct, tokenChip, visible } from '../dom.js';
import { activate } from './controls.js';
import { draftsOf } from './drafts.js';

export function renderOutput(container, run, current, onPick) {
  container.replaceChildren(...run.header.prompt_tokens.map((t) => tokenChip(t, { showId: false, cls: 'prompt' })));
  run.steps.forEach((s, i) => {
    for (const t of s.emitted) {
      container.append(tokenChip(t, {
        showId: false, cls: `gen ${i === current ? 'current' : ''}`, testid: 'token',
        attrs: { ...activate(() => onPick(i)), 'aria-current': i === current ? 'step' : null },
      }));
    }
  });
}

export function appendStep(list, run, i, onPick) {
  if (list.querySelector('.empty')) list.replaceChildren();
  const s = run.steps[i];
  const chosen = s.sampling.chosen;
  const p = s.sampling.candidates.find((c) => c.id === chosen.id);
  const forced = i < (run.header.request.forced_ids || []).length;
  const item = el('li', { dataset: { step: i }, 'data-testid': 'step-item' }, el('button', {
    type: 'button', class: 'step-btn', onclick: () => onPick(i) },
  el('span', { class: 'kind', text: `${i}. ${s.kind}` }),
  el('span', { class: 'tok', text: s.emitted.map((t) => visible(t.text)).join(' ') }),
  el('span', { class: 'p', text: p ? `p=${pct(p.p_model)}${forced ? ' (your pick)' : ''}` : '',
    title: `the model's probability for ${s.emitted.length > 1 ? 'the step\'s last token (the others were accepted '
      + 'drafts)' : 'this token'}: the softmax of its logits at temperature 1, before top-k and top-p` }),
  s.speculative ? drafts(s) : null,
  el('span', { class: 'ms', text: fmtMs(s.timings_ms.total) })));
  list.append(item);
}

// Speculative step: how many of the draft tokens the model accepted, e.g. "drafts 2/4".
function drafts(step) {
  const all = draftsOf(step);
  if (!all.length) return el('span', { class: 'kind', text: 'no draft' });
  return el('span', {
    class: step.speculative.accepted ? 'draft-ok' : 'draft-bad',
    title: all.map((d) => `${visible(d.text)} ${d.status}`).join(', '),
    text: `drafts ${step.speculative.accepted}/${all.length}`,
  });
}

export function renderSteps(list, run, onPick) {
  list.replaceChildren();
  if (!run.steps.length) {
    list.append(el('li', { class: 'empty', text: 'Waiting for the first step…' }));
    return;
  }
  run.steps.forEach((_, i) => appendStep(list, run, i, onPick));
}

export function markActive(list, i) {
  for (const li of list.children) {
    const on = Number(li.dataset.step) === i;
    li.classList.toggle('active', on);
    const button = li.querySelector('button');
    if (button) button.setAttribute('aria-current', on ? 'step' : 'false');
  }
  // scroll the list's own panel only: scrollIntoView would also scroll the page away from the overview
  const active = list.querySelector('li.active');
  const panel = list.closest('.steps-panel');
  if (!active || !panel) return;
  const [p, a] = [panel.getBoundingClientRect(), active.getBoundingClientRect()];
  if (a.top < p.top) panel.scrollTop -= p.top - a.top;
  else if (a.bottom > p.bottom) panel.scrollTop += a.bottom - p.bottom;
}
