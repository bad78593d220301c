// The run lifecycle: form -> request -> stream (or batch) -> state, with the status line,
// errors and the busy indicator. Navigation (nav.js) shows what arrives.
import * as api from './api.js';
import { $ } from './dom.js';
import { batchPrompts, readForm, requestBody, writeForm } from './form.js';
import * as nav from './nav.js';
import { SEL } from './selectors.js';
import { set, state } from './state.js';
import * as optimizations from './views/optimizations.js';
import { HISTORY_LIMIT, runLabel } from './views/timing.js';

let controller = null;

export function status(text) {
  $(SEL.status).textContent = text;
}

export function showError(err) {
  const box = $(SEL.error);
  box.hidden = !err;
  box.textContent = err ? (err.field ? `${err.message} (field: ${err.field})` : err.message || String(err)) : '';
}

function busy(on) {
  $(SEL.progress).hidden = !on;
  $(SEL.generate).disabled = on;
  $(SEL.stop).disabled = !on;
}

function remember(run) {
  run.label = `${runLabel(run)} · “${run.header.request.prompt.slice(0, 16)}”`;
  state.history = [...state.history.filter((h) => h !== run), run].slice(-HISTORY_LIMIT);
}

export function stop() {
  if (controller) controller.abort();
  status('Stopped.');
}

// Stream one run; `view` re-opens a step/stage/layer/head (a permalink, a re-created run).
export async function generate(overrides = {}, view = null) {
  const settings = { ...readForm(), ...overrides };
  if (settings.batching) return generateBatch(requestBody(settings));
  const body = requestBody(settings);
  if (controller) controller.abort();
  const mine = new AbortController();
  controller = mine;
  nav.stopPlaying();
  showError(null);
  busy(true);
  status('Sending the prompt to the model…');
  const t0 = performance.now();
  const run = { id: null, header: null, steps: [], done: false, stats: {}, ttft: null };
  const target = view && view.step !== null && view.step !== undefined ? view.step : null;
  try {
    await api.streamRun(body, {
      queued: (d) => status(`waiting: ${d.position} ahead of you`),
      run: (h) => {
        run.id = h.id;
        run.header = h;
        set({ playing: true });
        nav.showRun(run, { step: 0, ...(view || {}) });
        status(`Prompt is ${h.prompt_tokens.length} tokens; running them through ${h.model.n_layers} layers…`);
      },
      step: (d) => {
        run.steps.push(d.step);
        if (run.ttft === null) run.ttft = performance.now() - t0;
        nav.stepArrived(run, run.steps.length - 1, target);
        const text = d.step.emitted.map((t) => t.text).join('');
        status(`Step ${run.steps.length - 1}: “${text}” (${d.step.timings_ms.total.toFixed(0)} ms)…`);
      },
      done: (d) => {
        Object.assign(run, { done: true, stats: d.stats || {}, timings: d.timings, text: d.text });
        remember(run);
        set({ playing: false });
        nav.renderNav();
        nav.renderTiming();
        const stopped = d.timings && d.timings.stopped ? ` Stopped early: ${d.timings.stopped}.` : '';
        status(`Done: ${run.steps.length} steps; the first token was on screen after `
          + `${(run.ttft / 1000).toFixed(2)} s.${stopped}`);
      },
      error: (e) => showError(e.error),
    }, mine.signal);
  } catch (err) {
    if (err.name !== 'AbortError') { showError(err); status(''); }
  } finally {
    if (controller === mine) busy(false);       // a newer run may already be streaming
  }
  return run;
}

async function generateBatch(body) {
  showError(null);
  busy(true);
  const prompts = batchPrompts();
  status(`Generating ${prompts.length} prompts together…`);
  try {
    const { prompt, ...rest } = body;
    const batch = await api.runBatch({ ...rest, prompts });
    const runs = batch.runs.map((j) => fromJSON(j, batch.batch));
    runs.forEach((r) => { r.lanes = runs; });   // the overview draws one lane per row of the batch
    runs.forEach(remember);
    optimizations.renderBatch($(SEL.batchOutput), batch, (id) => nav.showRun(runs.find((r) => r.id === id)));
    nav.showRun(runs[0]);
    const b = batch.batch;
    status(`Done: a batch of ${b.size} prompts, ${b.tokens} tokens in ${(b.wall_ms / 1000).toFixed(2)} s `
      + `(${b.tokens_per_second} tokens/s in total).`);
  } catch (err) {
    showError(err);
  } finally {
    busy(false);
  }
}

// An imported (or evicted) run: generate it again from its own request; the seed makes it identical.
export function recreate() {
  const req = state.run.header.request;
  writeForm(req);
  return generate({ ...req, batching: false }, { step: state.step, stage: state.stage });
}

// A run as GET /api/runs/<id> (or a batch member) returns it -> the page's run object.
function fromJSON(json, batch = null) {
  return { id: json.id, header: json, steps: json.steps, done: true, stats: json.stats || {},
    timings: json.timings, batch, batchSize: batch ? batch.size : 0 };
}

// Click on another candidate: re-run with the tokens chosen so far plus that one forced.
export function continueFrom(stepIndex, tokenId) {
  const run = state.run;
  const chosen = run.steps.slice(0, stepIndex).flatMap((s) => s.emitted.map((t) => t.id));
  const req = run.header.request;
  const settings = { ...req, speculative: null, batching: false, forced_ids: [...chosen, tokenId] };
  writeForm(settings);
  return generate(settings, { step: stepIndex, stage: 'sampling' });
}
