// The pipeline diagram: six stage buttons; the one being shown is highlighted, and a
// short pulse runs along it whenever the model computes a step.
import { STAGES } from '../constants.js';
import { el } from '../dom.js';

export function build(nav, onSelect) {
  nav.replaceChildren();
  nav.setAttribute('aria-label', 'Stages');
  STAGES.forEach((s, i) => {
    if (i) nav.append(el('span', { class: 'arrow', text: '→', 'aria-hidden': 'true' }));
    nav.append(el('button', {
      type: 'button', 'data-testid': `stage-${s.key}`, dataset: { stage: s.key }, onclick: () => onSelect(s.key),
    }, `${i + 1}. ${s.title}`));
  });
}

export function highlight(nav, stage) {
  for (const b of nav.querySelectorAll('button')) {
    const on = b.dataset.stage === stage;
    b.classList.toggle('active', on);
    b.setAttribute('aria-current', on ? 'step' : 'false');
  }
}

export function pulse(nav) {
  const buttons = [...nav.querySelectorAll('button')];
  buttons.forEach((b, i) => {
    setTimeout(() => b.classList.add('pulse'), i * 40);
    setTimeout(() => b.classList.remove('pulse'), i * 40 + 120);
  });
}
