// Stage 6: the distribution before and after temperature / top-k / top-p, the draw u, the
// chosen token, and buttons to continue the text from any other candidate.
import { CATEGORY_COLORS, PATTERNS } from '../constants.js';
import { el, pct, visible } from '../dom.js';
import { draw, plotDiv, plotToken } from '../plot.js';

// Everything is in the step summary: nothing to fetch.
export function load(ctx) {
  return ctx;
}

export function render(container, { step, stepIndex, forced, continueFrom }) {
  const s = step.sampling;
  const cands = s.candidates;
  const labels = cands.map((c) => `${plotToken(c.text)} (${c.id})`);
  const bars = plotDiv('plot small');
  const series = [{ name: 'model (softmax of logits)', key: 'p_model' }];
  if (!s.greedy && s.temperature !== 1) {
    series.push({ name: `after temperature ${s.temperature}`, key: 'p_temperature' });
  }
  series.push({ name: s.greedy ? 'greedy: all on the top token' : 'after top-k / top-p (renormalized)',
    key: 'p_final' });
  container.append(el('p', { class: 'caption', text: settingsText(s) }), bars);
  draw(bars, series.map((se, i) => ({ type: 'bar', name: se.name, x: labels, y: cands.map((c) => c[se.key]),
    marker: { color: CATEGORY_COLORS[i], pattern: { shape: PATTERNS[i] } } })),
  { barmode: 'group', showlegend: true, legend: { orientation: 'h', y: 1.15 }, height: 320,
    xaxis: { type: 'category', tickangle: -30 }, yaxis: { range: [0, 1], title: { text: 'probability' } } },
  `Grouped bar chart of ${cands.length} candidates, ${series.map((se) => se.name).join('; ')}: `
    + `${cands.map((c) => `${visible(c.text)} ${pct(c.p_model)}`).join(', ')}.`);

  const chosen = s.chosen;
  if (s.greedy) {
    container.append(el('p', {}, 'Greedy: no random number is drawn; the most probable token ',
      el('strong', { text: visible(chosen.text) }), ' is taken.'));
  } else {
    theDraw(container, s, cands, chosen);
  }
  if (forced) {
    container.append(el('p', { class: 'honest', text: 'This token was chosen by you (a click on a candidate), '
      + 'not by the sampler.' }));
  }

  const buttons = el('div', { class: 'candidates' });
  for (const c of cands) {
    const isChosen = c.id === chosen.id;
    buttons.append(el('button', {
      type: 'button', class: isChosen ? 'chosen' : '', 'data-testid': 'candidate', dataset: { id: c.id },
      title: isChosen ? 'the token that was chosen' : 'continue the text from this token instead',
      'aria-current': isChosen ? 'true' : null,
      onclick: () => continueFrom(stepIndex, c.id),
    }, `${visible(c.text)}  ${pct(c.p_model)}`));
  }
  container.append(el('h3', { text: 'Try another path: continue from a different token' }), buttons);
  if (step.speculative) container.append(speculative(step.speculative));
}

// The cumulative bar with u marked, and the sentence saying where u fell.
function theDraw(container, s, cands, chosen) {
  const chart = plotDiv('plot small');
  const kept = cands.filter((c) => c.p_final > 0);
  container.append(el('h3', { text: `The draw: u = ${s.u.toFixed(4)}` }), chart);
  draw(chart, kept.map((c, i) => ({ type: 'bar', orientation: 'h', name: plotToken(c.text), x: [c.p_final],
    y: ['cumulative'], text: [plotToken(c.text)], textposition: 'inside',
    marker: { color: CATEGORY_COLORS[i % CATEGORY_COLORS.length],
      line: { width: c.id === chosen.id ? 3 : 0, color: '#000' } } })),
  { barmode: 'stack', height: 150, margin: { l: 90, r: 20, t: 10, b: 40 }, xaxis: { range: [0, 1] },
    shapes: [{ type: 'line', x0: s.u, x1: s.u, y0: -0.5, y1: 0.5, line: { color: '#000', width: 3, dash: 'dot' } }] },
  `Stacked bar of the kept tokens' probabilities from 0 to 1, with u = ${s.u.toFixed(4)} marked; `
    + `u falls in the slice of ${visible(chosen.text)}.`);
  container.append(el('p', { class: 'caption' }, 'Each kept token owns a slice of [0, 1) as wide as its '
    + `probability (${s.kept} kept; only the ${kept.length} listed above are drawn). u falls in the slice of `,
  el('strong', { text: visible(chosen.text) }), '.'));
}

function settingsText(s) {
  if (s.greedy) return 'Temperature 0: greedy decoding.';
  const parts = [`temperature ${s.temperature}`];
  parts.push(s.top_k ? `top-k ${s.top_k}` : 'no top-k');
  parts.push(s.top_p ? `top-p ${s.top_p}` : 'no top-p');
  return `Sampling with ${parts.join(', ')}.`;
}

function speculative(spec) {
  const box = el('div', { class: 'honest' }, el('strong', { text: 'Speculative decoding in this step: ' }));
  box.append(`the ${spec.source} draft proposed ${spec.draft.length} token(s): `);
  for (const d of spec.draft) {
    box.append(el('span', { class: d.accepted ? 'draft-ok' : 'draft-bad',
      title: d.accepted ? 'accepted by the model' : 'rejected by the model', text: ` ${visible(d.text)} ` }));
  }
  if (!spec.draft.length) box.append('(none: nothing to copy here) ');
  box.append(`; ${spec.accepted} accepted, then the model itself chose `,
    el('strong', { text: visible(spec.final.text) }),
    spec.final_kind === 'resample'
      ? ' in place of the first rejected draft.' : ' (the bonus token after the accepted drafts).');
  return box;
}
