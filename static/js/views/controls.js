// Layer and head pickers shared by the attention and feed-forward views.
import { el } from '../dom.js';

export function picker(label, count, value, onChange, name = label) {
  const select = el('select', { 'aria-label': label, name, onchange: (e) => onChange(Number(e.target.value)) });
  for (let i = 0; i < count; i += 1) select.append(el('option', { value: i, text: `${label} ${i}`, selected: i === value }));
  return el('label', {}, select);
}
