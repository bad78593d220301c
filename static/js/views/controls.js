// Controls shared by the views: the layer and head pickers, and clickable non-buttons made keyboard-operable.
import { el } from '../dom.js';

export function picker(label, count, value, onChange, name = label) {
  const select = el('select', { 'aria-label': label, name, onchange: (e) => onChange(Number(e.target.value)) });
  for (let i = 0; i < count; i += 1) {
    select.append(el('option', { value: i, text: `${label} ${i}`, selected: i === value }));
  }
  return el('label', {}, select);
}

// Attributes for an element that acts as a button (a chip, a head thumbnail): focusable with Tab,
// activated by a click, Enter or Space. Spread into el()'s attributes.
export function activate(action) {
  return {
    role: 'button', tabindex: '0', onclick: action,
    onkeydown: (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); e.stopPropagation(); action(); }
    },
  };
}
