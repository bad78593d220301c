// Navigation: which stage, step, layer and head is on screen, and moving between them (the stage
// buttons, Prev/Next, the slider, Play, the keyboard). Every view is drawn the same way:
// data = await view.load(ctx), then view.render(container, data).
import { STAGES, STAGE_KEYS } from './constants.js';
import { $, el } from './dom.js';
import { SEL } from './selectors.js';
import { currentStep, set, state } from './state.js';
import * as attention from './views/attention.js';
import * as embedding from './views/embedding.js';
import * as feedforward from './views/feedforward.js';
import * as overview from './views/overview.js';
import * as pipeline from './views/pipeline.js';
import * as prediction from './views/prediction.js';
import * as sampling from './views/sampling.js';
import * as steps from './views/steps.js';
import * as timing from './views/timing.js';
import * as tokenization from './views/tokenization.js';

const VIEWS = { tokenization, embedding, attention, feedforward, prediction, sampling };
const PLAY_MIN_MS = 500;          // Play holds a step at least this long (the overview's motion sets the pace)
const STREAM_RENDER_MS = 800;
let renderSeq = 0;
let playSeq = 0;
let stageTimer = null;
// Run actions a view may start (continue from a candidate, re-create an unknown run): set by main.js.
const actions = { continueFrom: null, recreate: null };

export function setActions(a) {
  Object.assign(actions, a);
}

// What a stage view's load() receives.
function stageCtx() {
  const seq = renderSeq;
  return {
    run: state.run, step: currentStep(), stepIndex: state.step, layer: state.layer, head: state.head,
    model: state.run.header.model, forced: state.step < (state.run.header.request.forced_ids || []).length,
    stale: () => seq !== renderSeq,
    setView: (patch) => { set(patch); renderStage(); },
    continueFrom: actions.continueFrom,
  };
}

export async function renderStage() {
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
    const data = await view.load(ctx);
    if (ctx.stale()) return;
    body.replaceChildren();
    await view.render(body, data);
  } catch (err) {
    if (ctx.stale()) return;
    body.replaceChildren(el('p', { class: 'honest', text: `Could not load this view: ${err.message}` }));
    if (err.status === 404 && state.run.header.request) {
      body.append(el('button', { type: 'button', onclick: actions.recreate,
        text: 'Re-create this run here (same prompt, settings and seed)' }));
    }
  }
}

export function renderNav() {
  const run = state.run;
  const n = run ? run.steps.length : 0;
  const slider = $(SEL.slider);
  slider.max = Math.max(0, n - 1);
  slider.value = state.step;
  slider.setAttribute('aria-valuetext', n ? `step ${state.step} of ${n - 1}` : 'no run yet');
  const s = currentStep();
  $(SEL.stepLabel).textContent = s
    ? `Step ${state.step} of ${n - 1}: ${s.kind}, ${s.input_tokens.length} token(s) in` : '';
  $(SEL.prev).disabled = !n || (state.step === 0 && state.stage === STAGE_KEYS[0]);
  $(SEL.next).disabled = !n || (state.step >= n - 1 && state.stage === STAGE_KEYS[STAGE_KEYS.length - 1]);
  // The label names the action (Pause while playing); a button whose label changes carries no aria-pressed.
  $(SEL.play).textContent = state.playing ? 'Pause' : 'Play';
  if (run) {
    steps.renderOutput($(SEL.output), run, state.step, (i) => goTo(i));
    steps.markActive($(SEL.stepsList), state.step);
    if (currentStep()) overview.show({ ...stageCtx(), stage: state.stage });
  }
}

export function renderTiming() {
  const ctx = { run: state.run, history: state.history, ttftMs: state.run && state.run.ttft };
  timing.render($(SEL.timing), timing.load(ctx));
}

export function goTo(step, stage = state.stage, { keepPlaying = false, throttle = false } = {}) {
  set({ step, stage, playing: keepPlaying ? state.playing : false });
  renderNav();
  if (throttle) throttledStage();
  else renderStage();
}

export function selectStage(stage) {
  set({ stage });
  renderStage();
  renderNav();
}

// While tokens stream in, redraw the stage at most every STREAM_RENDER_MS: its detail
// (e.g. the logit lens) is computed on the same CPU that is generating the tokens.
function throttledStage() {
  if (stageTimer) return;
  stageTimer = setTimeout(() => { stageTimer = null; renderStage(); }, STREAM_RENDER_MS);
}

// Presenter order: every stage of step 0, then every stage of step 1, ...
export function next() {
  if (!state.run) return;
  const i = STAGE_KEYS.indexOf(state.stage);
  if (i < STAGE_KEYS.length - 1) goTo(state.step, STAGE_KEYS[i + 1]);
  else if (state.step < state.run.steps.length - 1) goTo(state.step + 1, STAGE_KEYS[0]);
}

export function prev() {
  if (!state.run) return;
  const i = STAGE_KEYS.indexOf(state.stage);
  if (i > 0) goTo(state.step, STAGE_KEYS[i - 1]);
  else if (state.step > 0) goTo(state.step - 1, STAGE_KEYS[STAGE_KEYS.length - 1]);
}

// A key press moves like Prev/Next; in presenter mode the stage is scrolled into view.
export function keyStep(move) {
  move();
  if (document.body.classList.contains('presenter')) $(SEL.overviewPanel).scrollIntoView({ block: 'start' });
}

export function stopPlaying() {
  playSeq += 1;
}

export function togglePlay() {
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
  if (state.step >= state.run.steps.length - 1) {
    set({ playing: false });
    renderNav();
    return;
  }
  goTo(state.step + 1, state.stage, { keepPlaying: true });
  playLoop(seq);
}

// Show a run (streaming, finished, imported or from a batch) at a step, stage, layer and head.
export function showRun(run, view = {}) {
  set({ run, step: view.step ?? 0, stage: view.stage ?? state.stage, layer: view.layer ?? state.layer,
    head: view.head ?? state.head });
  steps.renderSteps($(SEL.stepsList), run, (i) => goTo(i));
  $(SEL.exportBtn).disabled = false;
  $(SEL.batchOutput).hidden = !run.batchSize;
  renderNav();
  renderStage();
  renderTiming();
}

// A step arrived while streaming: list it, and follow it when playing (or when it is the one a
// permalink asked for).
export function stepArrived(run, i, target) {
  steps.appendStep($(SEL.stepsList), run, i, (k) => goTo(k));
  pipeline.pulse($(SEL.pipeline));
  if (state.run === run && (target === i || (target === null && state.playing))) {
    goTo(i, state.stage, { keepPlaying: true, throttle: i > 0 });
  } else {
    renderNav();
  }
  renderTiming();
}

export function buildPipeline() {
  pipeline.build($(SEL.pipeline), selectStage);
}
