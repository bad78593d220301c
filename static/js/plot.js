// Thin wrapper over the vendored plotly.js (a classic script, window.Plotly), with one look for every chart.
import { VIRIDIS } from './constants.js';
import { visible } from './dom.js';

// Plotly reads a subset of HTML in every label, legend, annotation and hover text (<a href>, <b>,
// <br>, <span style>, entities). Text from a prompt or a token must show as typed and never become
// a link, so it goes through plotText; plotly turns the entities back into the characters.
export function plotText(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

// A token as a chart label: invisible characters made visible (␣ ↵ ⇥), markup escaped.
export const plotToken = (text) => plotText(visible(text));

function baseFont() {
  return Number.parseFloat(getComputedStyle(document.body).fontSize) || 15;
}

// Draw (or redraw) a chart. `alt` is its short text alternative, said from the data by each view:
// screen readers get it instead of the SVG, whose parts mean nothing read one by one.
export function draw(node, data, layout = {}, alt = null) {
  if (alt) {
    node.setAttribute('role', 'img');
    node.setAttribute('aria-label', alt);
  }
  const size = baseFont() * 0.8;
  const base = {
    margin: { l: 60, r: 20, t: 30, b: 50 }, font: { family: 'system-ui, sans-serif', size },
    paper_bgcolor: '#fff', plot_bgcolor: '#fff', showlegend: false,
  };
  const full = { ...base, ...layout };
  full.xaxis = { automargin: true, ...layout.xaxis };
  full.yaxis = { automargin: true, ...layout.yaxis };
  return window.Plotly.react(node, data, full, { displayModeBar: false, responsive: true });
}

export function plotDiv(cls = 'plot') {
  const div = document.createElement('div');
  div.className = cls;
  return div;
}

// t in [0, 1] -> "rgb(...)" on the viridis scale (for canvas drawings and table cells).
export function viridis(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// Black or white, whichever reads better on viridis(t) (WCAG relative luminance).
export function inkOn(t) {
  const [r, g, b] = viridis(t).slice(4, -1).split(',').map((v) => {
    const c = Number(v) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const lum = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) ? '#000' : '#fff';
}

// Draw a matrix [rows][cols] of values in [0, 1] onto a canvas, one pixel per cell.
export function paintMatrix(canvas, matrix) {
  const rows = matrix.length;
  const cols = matrix[0].length;
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(cols, rows);
  for (let r = 0; r < rows; r += 1) {
    for (let c = 0; c < cols; c += 1) {
      const [R, G, B] = viridis(matrix[r][c]).slice(4, -1).split(',').map(Number);
      const o = 4 * (r * cols + c);
      img.data[o] = R; img.data[o + 1] = G; img.data[o + 2] = B; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}
