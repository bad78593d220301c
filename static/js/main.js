// Wires the page together: form -> stream -> state -> views. Each view lives in views/.
import * as api from './api.js';
import { SEL, STAGES, STAGE_KEYS } from './constants.js';
import { $, el } from './dom.js';
import { batchPrompts, readForm, requestBody, writeForm } from './form.js';
import { copyPermalink, exportRun, importRun } from './io.js';
import * as presenter from './presenter.js';
import { currentStep, readURL, set, state } from './state.js';
import * as attention from './views/attention.js';
import * as embedding from './views/embedding.js';
import * as feedforward from './views/feedforward.js';
import * as modelCard from './views/model.js';
import * as optimizations from './views/optimizations.js';
import * as overview from './views/overview.js';
import * as pipeline from './views/pipeline.js';
import * as prediction from './views/prediction.js';
import * as sampling from './views/sampling.js';
import * as steps from './views/steps.js';
import * as timing from './views/timing.js';
import * as tokenization from './views/tokenization.js';

const VIEWS = { tokenization, embedding, attention, feedforward, prediction, sampling };
const HISTORY_LIMIT = 6;
const PLAY_MIN_MS = 500;          // Play holds a step at least this long (the overview's motion sets the pace)
const STREAM_RENDER_MS = 800;
const boot = JSON.parse($(SEL.boot).textContent);
let controller = null;
let renderSeq = 0;
let playSeq = 0;
let stageTimer = null;

// -- status, errors, progress -----------------------------------------------------
function status(text) { $(SEL.status).textContent = text; }

function showError(err) {
  const box = $(SEL.error);
  box.hidden = !err;
  box.textContent = err ? (err.field ? `${err.message} (field: ${err.field})` : err.message || String(err)) : '';
}

function busy(on) {
  $(SEL.progress).hidden = !on;
  $(SEL.generate).disabled = on;
  $(SEL.stop).disabled = !on;
}

// -- rendering ----------------------------------------------------------------------------
function stageCtx() {
  const seq = renderSeq;
  return {
    run: state.run, step: currentStep(), stepIndex: state.step, layer: state.layer, head: state.head,
    model: state.run.header.model, forced: state.step < (state.run.header.request.forced_ids || []).length,
    stale: () => seq !== renderSeq,
    setView: (patch) => { set(patch); renderStage(); },
    continueFrom,
  };
}

async function renderStage() {
  renderSeq += 1;
  const stage = STAGES.find((s) => s.key === state.stage);
  pipeline.highlight($(SEL.pipeline), stage.key);
  $(SEL.stageTitle).textContent = `${STAGE_KEYS.indexOf(stage.key) + 1}. ${stage.title}`;
  $(SEL.stageExplain).replaceChildren(...stage.explain.map((p) => el('p', { text: p })));
  const body = $(SEL.stageBody);
  if (!state.run || !currentStep()) {
    body.replaceChildren(el('p', { class: 'caption', text: 'Generate to fill this stage with data from a real run.' }));
    return;
  }
  body.dataset.stage = stage.key;
  const view = VIEWS[stage.key];
  const ctx = stageCtx();
  try {
    const data = view.load ? await view.load(ctx) : null;
    if (ctx.stale()) return;
    body.replaceChildren();
    await view.render(body, ctx, data);
  } catch (err) {
    if (ctx.stale()) return;
    body.replaceChildren(el('p', { class: 'honest', text: `Could not load this view: ${err.message}` }));
    if (err.status === 404 && state.run.header.request) {
      body.append(el('button', { type: 'button', onclick: recreate, text: 'Re-create this run here (same prompt, settings and seed)' }));
    }
  }
}

function renderNav() {
  const run = state.run;
  const n = run ? run.steps.length : 0;
  const slider = $(SEL.slider);
  slider.max = Math.max(0, n - 1);
  slider.value = state.step;
  const s = currentStep();
  $(SEL.stepLabel).textContent = s ? `Step ${state.step} of ${n - 1}: ${s.kind}, ${s.input_tokens.length} token(s) in` : '';
  $(SEL.prev).disabled = !n || (state.step === 0 && state.stage === STAGE_KEYS[0]);
  $(SEL.next).disabled = !n || (state.step >= n - 1 && state.stage === STAGE_KEYS[STAGE_KEYS.length - 1]);
  $(SEL.play).textContent = state.playing ? 'Pause' : 'Play';
  $(SEL.play).setAttribute('aria-pressed', String(!state.playing));
  if (run) {
    steps.renderOutput($(SEL.output), run, state.step, (i) => goTo(i));
    steps.markActive($(SEL.stepsList), state.step);
    if (currentStep()) overview.show({ ...stageCtx(), stage: state.stage });
  }
}

function renderTiming() {
  timing.render($(SEL.timing), state.run, state.history, state.run && state.run.ttft);
}

function goTo(step, stage = state.stage, { keepPlaying = false, throttle = false } = {}) {
  set({ step, stage, playing: keepPlaying ? state.playing : false });
  renderNav();
  if (throttle) throttledStage();
  else renderStage();
}

// While tokens stream in, redraw the stage at most every STREAM_RENDER_MS: its detail
// (e.g. the logit lens) is computed on the same CPU that is generating the tokens.
function throttledStage() {
  if (stageTimer) return;
  stageTimer = setTimeout(() => { stageTimer = null; renderStage(); }, STREAM_RENDER_MS);
}

// Presenter order: every stage of step 0, then every stage of step 1, ...
function keyStep(move) {
  move();
  if (document.body.classList.contains('presenter')) $('#overview-panel').scrollIntoView({ block: 'start' });
}

function next() {
  if (!state.run) return;
  const i = STAGE_KEYS.indexOf(state.stage);
  if (i < STAGE_KEYS.length - 1) goTo(state.step, STAGE_KEYS[i + 1]);
  else if (state.step < state.run.steps.length - 1) goTo(state.step + 1, STAGE_KEYS[0]);
}

function prev() {
  if (!state.run) return;
  const i = STAGE_KEYS.indexOf(state.stage);
  if (i > 0) goTo(state.step, STAGE_KEYS[i - 1]);
  else if (state.step > 0) goTo(state.step - 1, STAGE_KEYS[STAGE_KEYS.length - 1]);
}

function togglePlay() {
  playSeq += 1;
  const playing = !state.playing;
  set({ playing });
  if (playing && state.run && state.run.done) {
    if (state.step >= state.run.steps.length - 1) goTo(0, state.stage, { keepPlaying: true });
    playLoop(playSeq);
  }
  renderNav();
}

// Play: each step's overview motion (paced by its measured stage times) runs, then the next step.
async function playLoop(seq) {
  await Promise.all([overview.settled(), new Promise((r) => { setTimeout(r, PLAY_MIN_MS); })]);
  if (seq !== playSeq || !state.playing) return;
  if (state.step >= state.run.steps.length - 1) { set({ playing: false }); renderNav(); return; }
  goTo(state.step + 1, state.stage, { keepPlaying: true });
  playLoop(seq);
}

// -- running ------------------------------------------------------------------------------
function showRun(run, view = {}) {
  set({ run, step: view.step ?? 0, stage: view.stage ?? state.stage, layer: view.layer ?? state.layer, head: view.head ?? state.head });
  steps.renderSteps($(SEL.stepsList), run, (i) => goTo(i));
  $(SEL.exportBtn).disabled = false;
  $(SEL.batchOutput).hidden = !run.batchSize;
  renderNav();
  renderStage();
  renderTiming();
}

function remember(run) {
  run.label = `${timing.runLabel(run)} · “${run.header.request.prompt.slice(0, 16)}”`;
  state.history = [...state.history.filter((h) => h !== run), run].slice(-HISTORY_LIMIT);
}

async function generate(overrides = {}, view = null) {
  const settings = { ...readForm(), ...overrides };
  if (settings.batching) return generateBatch(requestBody(settings));
  const body = requestBody(settings);
  if (controller) controller.abort();
  const mine = new AbortController();
  controller = mine;
  playSeq += 1;                                 // a new run stops Play
  showError(null);
  busy(true);
  status('Sending the prompt to the model…');
  const t0 = performance.now();
  const run = { id: null, header: null, steps: [], done: false, stats: {}, ttft: null };
  try {
    await api.streamRun(body, {
      run: (h) => {
        run.id = h.id;
        run.header = h;
        set({ playing: true });
        showRun(run, { step: 0, ...(view || {}) });
        status(`Prompt is ${h.prompt_tokens.length} tokens; running them through ${h.model.n_layers} layers…`);
      },
      step: (d) => {
        run.steps.push(d.step);
        if (run.ttft === null) run.ttft = performance.now() - t0;
        const i = run.steps.length - 1;
        steps.appendStep($(SEL.stepsList), run, i, (k) => goTo(k));
        pipeline.pulse($(SEL.pipeline));
        const target = view && view.step !== null && view.step !== undefined ? view.step : null;
        if (state.run === run && (target === i || (target === null && state.playing))) goTo(i, state.stage, { keepPlaying: true, throttle: i > 0 });
        else renderNav();
        renderTiming();
        status(`Step ${i}: “${d.step.emitted.map((t) => t.text).join('')}” (${d.step.timings_ms.total.toFixed(0)} ms)…`);
      },
      done: (d) => {
        Object.assign(run, { done: true, stats: d.stats || {}, timings: d.timings, text: d.text });
        remember(run);
        set({ playing: false });
        renderNav();
        renderTiming();
        const stopped = d.timings && d.timings.stopped ? ` Stopped early: ${d.timings.stopped}.` : '';
        status(`Done: ${run.steps.length} steps; the first token was on screen after ${(run.ttft / 1000).toFixed(2)} s.${stopped}`);
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
    optimizations.renderBatch($(SEL.batchOutput), batch, (id) => showRun(runs.find((r) => r.id === id)));
    showRun(runs[0]);
    status(`Done: a batch of ${batch.batch.size} prompts, ${batch.batch.tokens} tokens in ${(batch.batch.wall_ms / 1000).toFixed(2)} s (${batch.batch.tokens_per_second} tokens/s in total).`);
  } catch (err) {
    showError(err);
  } finally {
    busy(false);
  }
}

// An imported (or evicted) run: generate it again from its own request; the seed makes it identical.
function recreate() {
  const req = state.run.header.request;
  writeForm(req);
  return generate({ ...req, batching: false }, { step: state.step, stage: state.stage });
}

// A run as GET /api/runs/<id> (or a batch member) returns it -> the page's run object.
function fromJSON(json, batch = null) {
  return { id: json.id, header: json, steps: json.steps, done: true, stats: json.stats || {}, timings: json.timings, batch, batchSize: batch ? batch.size : 0 };
}

// Click on another candidate: re-run with the tokens chosen so far plus that one forced.
function continueFrom(stepIndex, tokenId) {
  const run = state.run;
  const chosen = run.steps.slice(0, stepIndex).flatMap((s) => s.emitted.map((t) => t.id));
  const req = run.header.request;
  const settings = { ...req, speculative: null, batching: false, forced_ids: [...chosen, tokenId] };
  writeForm(settings);
  return generate(settings, { step: stepIndex, stage: 'sampling' });
}

// -- wiring -------------------------------------------------------------------------------
function init() {
  pipeline.build($(SEL.pipeline), (stage) => { set({ stage }); renderStage(); renderNav(); });
  optimizations.applyFeatures(boot.features);
  overview.init($('#overview'), { ...overview.controls(), nLayers: boot.model.n_layers });
  optimizations.renderExplain($(SEL.optExplain));
  for (const cell of document.querySelectorAll(`${SEL.archTable} [data-arch]`)) cell.classList.toggle('current', cell.dataset.arch === boot.model.arch);
  $(SEL.archNote).textContent = `This server runs ${boot.model.name} (${boot.model.arch} family). GPT-2 runs when its files are given with app.py --model.`;
  api.getModel().then((card) => modelCard.render($(SEL.modelCard), card)).catch(() => {});
  $(SEL.form).addEventListener('submit', (e) => { e.preventDefault(); generate(); });
  $(SEL.stop).addEventListener('click', () => { if (controller) controller.abort(); status('Stopped.'); });
  $(SEL.prev).addEventListener('click', prev);
  $(SEL.next).addEventListener('click', next);
  $(SEL.play).addEventListener('click', togglePlay);
  $(SEL.slider).addEventListener('input', (e) => goTo(Number(e.target.value)));
  $('#batching').addEventListener('change', (e) => { $(SEL.batchBox).hidden = !e.target.checked; });
  const togglePresenter = () => presenter.toggle($(SEL.presenter));
  $(SEL.presenter).addEventListener('click', togglePresenter);
  $(SEL.permalink).addEventListener('click', async () => status(await copyPermalink()));
  $(SEL.exportBtn).addEventListener('click', () => state.run && exportRun(state.run));
  $(SEL.importFile).addEventListener('change', async (e) => {
    try {
      const run = await importRun(e.target.files[0]);
      writeForm(run.header.request);
      showRun(run);
      status(`Imported run ${run.id}: ${run.steps.length} steps.`);
    } catch (err) { showError(err); }
    e.target.value = '';
  });
  presenter.bindKeys({ next: () => keyStep(next), prev: () => keyStep(prev), generate: () => generate(), togglePresenter });
  $(SEL.generate).disabled = false;             // disabled in the HTML until the page can handle it
  renderStage();
  renderTiming();

  const { settings, view } = readURL();
  if (view.stage) set({ stage: view.stage });
  if (view.layer !== null) set({ layer: view.layer });
  if (view.head !== null) set({ head: view.head });
  if (settings) {
    writeForm(settings);
    generate({ ...settings, batching: false }, view);
  }
}

init();
