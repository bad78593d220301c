// SVG helpers for the overview: create elements once, then change only attributes that differ.
import { visible } from '../dom.js';

const NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, tag);
  setAttrs(node, attrs);
  if (parent) parent.append(node);
  return node;
}

// Attributes whose value is unchanged are not written again (no style recalculation).
export function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') {
      if (node.textContent !== String(v)) node.textContent = v;
    } else if (v === null || v === undefined || v === false) {
      if (node.hasAttribute(k)) node.removeAttribute(k);
    } else if (node.getAttribute(k) !== String(v)) {
      node.setAttribute(k, v);
    }
  }
  return node;
}

export function toggle(node, cls, on) {
  if (node.classList.contains(cls) !== on) node.classList.toggle(cls, on);
}

// A token as the page shows it (␣ space, ↵ newline), shortened to n characters.
export function tokenLabel(tok, n = 99) {
  const s = visible(tok.text);
  return [...s].length > n ? `${[...s].slice(0, n - 1).join('')}…` : s;
}

// Diverging blue-white-orange (Okabe-Ito ends) for signed values in [-1, 1].
export function diverging(x) {
  const t = Math.max(-1, Math.min(1, x));
  const end = t < 0 ? [0, 114, 178] : [230, 159, 0];
  const a = Math.abs(t);
  const c = end.map((e) => Math.round(255 + (e - 255) * a));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export const pct = (p) => `${(100 * p).toFixed(p < 0.001 ? 2 : 1)}%`;
