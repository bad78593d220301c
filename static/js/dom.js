// Small DOM helpers. Data from the model is always inserted as text, never as HTML.

export const $ = (sel, root = document) => root.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// A token's text with the invisible made visible: ␣ for a space, ↵ for a newline, ⇥ for a tab.
export function visible(text) {
  return text.replace(/ /g, '␣').replace(/\n/g, '↵').replace(/\t/g, '⇥');
}

// A token as a chip; `attrs` adds attributes (e.g. controls.activate's, to make it a button).
export function tokenChip(tok, { showId = true, cls = '', testid = null, title = null, attrs = {} } = {}) {
  const txt = el('span', { class: 'txt' });
  for (const part of tok.text.split(/( |\n|\t)/)) {
    if (part === '') continue;
    if (part === ' ' || part === '\n' || part === '\t') txt.append(el('span', { class: 'space', text: visible(part) }));
    else txt.append(document.createTextNode(part));
  }
  const chip = el('span', {
    class: `chip ${tok.special ? 'special' : ''} ${cls}`.trim(),
    title: title || `${JSON.stringify(tok.text)}, id ${tok.id}${tok.special ? ', special token' : ''}`,
    'data-testid': testid, dataset: { id: tok.id }, ...attrs,
  }, txt);
  if (showId) chip.append(el('span', { class: 'id', text: tok.id }));
  return chip;
}

// SI units, as in the docs and the bench: 1 kB = 1,000 bytes, 1 MB = 10^6 bytes.
export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'kB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '—';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

export const pct = (p) => `${(100 * p).toFixed(p < 0.001 ? 3 : 1)}%`;
