// Stage 6: the distribution before and after temperature / top-k / top-p, the draw u, the
// chosen token, and buttons to continue the text from any other candidate.
import { CATEGORY_COLORS, PATTERNS } from '../constants.js';
import { el, pct, visible } from '../dom.js';
import { draw, plotDiv, plotToken } from '../plot.js';
import { draftsOf } from './drafts.js';

// Everything is in the step summary: nothing to fetch.
export function load(ctx) {
  return ctx;
}

export function render(container, { step, stepIndex, forced, continueFrom }) {
  const s = step.sampling;
  const cands = s.candidates;
  const labels = cands.map((c) => `${plotToken(c.text)} (${c.id})`);
  const bars = plotDiv('plot small');
  const spec = step.speculative;
  const rejected = spec && spec.final_kind === 'resample' ? spec.draft[spec.accepted] : null;
  const series = [{ name: 'model (softmax of logits)', key: 'p_model' }];
  if (!s.greedy && s.temperature !== 1) {
    series.push({ name: `after temperature ${s.temperature}`, key: 'p_temperature' });
  }
  series.push({ name: finalName(s, rejected), key: 'p_final' });
  container.append(el('p', { class: 'caption', text: settingsText(s) }), bars);
  if (rejected) container.append(residualText(s, spec, rejected));
  draw(bars, series.map((se, i) => ({ type: 'bar', name: se.name, x: labels, y: cands.map((c) => c[se.key]),
    marker: { color: CATEGORY_COLORS[i], pattern: { shape: PATTERNS[i], solidity: 0.5 } } })),
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
  if (spec) container.append(speculative(step));
}

// The cumulative bar with u marked, and the sentence saying where u fell. Each slice sits at the
// interval the engine's draw walked (sampling.draw: descending probability, ties by lower id);
// a summary without `draw` (older runs) is laid end to end in the candidates' order.
function theDraw(container, s, cands, chosen) {
  const chart = plotDiv('plot small');
  let end = 0;
  const slices = s.draw ?? cands.filter((c) => c.p_final > 0).map((c, rank) => {
    end += c.p_final;
    return { ...c, rank, start: end - c.p_final, end };
  });
  container.append(el('h3', { text: `The draw: u = ${s.u.toFixed(4)}` }), chart);
  draw(chart, slices.map((c, i) => ({ type: 'bar', orientation: 'h', name: plotToken(c.text), x: [c.end - c.start],
    base: [c.start], y: ['cumulative'], text: [plotToken(c.text)], textposition: 'inside',
    marker: { color: CATEGORY_COLORS[i % CATEGORY_COLORS.length],
      line: { width: c.id === chosen.id ? 3 : 0, color: '#000' } } })),
  { barmode: 'overlay', height: 150, margin: { l: 90, r: 20, t: 10, b: 40 }, xaxis: { range: [0, 1] },
    shapes: [{ type: 'line', x0: s.u, x1: s.u, y0: -0.5, y1: 0.5, line: { color: '#000', width: 3, dash: 'dot' } }] },
  `Bar of the kept tokens' slices of [0, 1), from the most probable down, with u = ${s.u.toFixed(4)} marked; `
    + `u falls in the slice of ${visible(chosen.text)}.`);
  const contiguous = slices.filter((c, i) => c.rank === i).length;
  const last = slices[slices.length - 1];
  const gap = contiguous < slices.length ? ` and, after a gap, the chosen token at rank ${last.rank + 1}` : '';
  container.append(el('p', { class: 'caption' }, 'Each kept token owns a slice of [0, 1) as wide as its '
    + 'probability, laid end to end from the most probable down (equal ones: lower id first). '
    + `${s.kept} kept; drawn: the first ${contiguous}${gap}. u falls in the slice of `,
  el('strong', { text: visible(chosen.text) }), '.'));
}

// The distribution the token was drawn from: the filtered model distribution or, after a
// rejected draft, the residual norm(max(0, p − q)) (llmviz/speculative.py verify()).
function finalName(s, rejected) {
  if (rejected) return `residual norm(max(0, p − q)) after rejecting ${plotToken(rejected.text)}`;
  return s.greedy ? 'greedy: all on the top token' : 'after top-k / top-p (renormalized)';
}

function residualText(s, spec, rejected) {
  const d = spec.decisions[spec.accepted];
  let test = `p/q = ${(d.p / d.q).toFixed(3)}, u = ${d.u === null ? '—' : d.u.toFixed(3)} ≥ p/q`;
  if (s.greedy) test = 'greedy decoding puts p = 1 on the model\'s top token, and this is not it: p = 0';
  else if (d.p === 0) test = 'the model gives it p = 0 after temperature, top-k and top-p';
  return el('p', { class: 'caption' }, `The draft token ${visible(rejected.text)} was rejected (${test}). `,
    'A draft token is accepted with probability min(1, p/q), p being the model\'s probability for it and q the '
    + 'draft\'s. After a rejection the token is drawn from the residual norm(max(0, p − q)): the part of the '
    + 'model\'s distribution the draft did not already cover, renormalized. Together the two rules emit tokens '
    + 'with exactly the model\'s own probabilities. The bars labelled residual show that distribution; the '
    + 'rejected token has none.');
}

function settingsText(s) {
  if (s.greedy) return 'Temperature 0: greedy decoding.';
  const parts = [`temperature ${s.temperature}`];
  parts.push(s.top_k ? `top-k ${s.top_k}` : 'no top-k');
  parts.push(s.top_p ? `top-p ${s.top_p}` : 'no top-p');
  return `Sampling with ${parts.join(', ')}.`;
}

function speculative(step) {
  const spec = step.speculative;
  const all = draftsOf(step);
  const source = spec.source.replace('-', ' ');
  const box = el('div', { class: 'honest' }, el('strong', { text: 'Speculative decoding in this step: ' }));
  if (!all.length) {
    box.append(`the ${source} draft proposed nothing this time (nothing to copy here), so the model ran one `
      + 'position as usual and chose ', el('strong', { text: visible(spec.final.text) }), '.');
    return box;
  }
  box.append(`the ${source} draft proposed ${all.length} token${all.length === 1 ? '' : 's'}: `);
  for (const d of all) {
    box.append(el('span', { class: d.status === 'accepted' ? 'draft-ok' : 'draft-bad', title: d.status,
      text: ` ${visible(d.text)} ` }), `(${d.status}) `);
  }
  const unchecked = all.filter((d) => d.status === 'not checked').length;
  if (unchecked) {
    box.append(`(the ${unchecked} after the first rejection are not checked: their rows are thrown away) `);
  }
  box.append(`— ${spec.accepted} accepted, then the model itself chose `,
    el('strong', { text: visible(spec.final.text) }),
    spec.final_kind === 'resample'
      ? ' in place of the first rejected draft.'
      : ' (the bonus token after the accepted drafts, drawn from the model\'s distribution at that position).');
  return box;
}
