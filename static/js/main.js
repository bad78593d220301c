// Wires the page together: the form and header buttons to the run lifecycle (run.js), the
// stepper, stage buttons and keys to navigation (nav.js), and the panels that need no run.
import { $ } from './dom.js';
import { FACTS } from './facts.js';
import { setUpForm, writeForm } from './form.js';
import { copyPermalink, exportRun, importRun } from './io.js';
import * as nav from './nav.js';
import * as presenter from './presenter.js';
import * as runs from './run.js';
import { SEL } from './selectors.js';
import { readURL, set, state } from './state.js';
import * as modelCard from './views/model.js';
import * as optimizations from './views/optimizations.js';
import * as overview from './views/overview.js';

function describeModel() {
  const arch = FACTS.model.config.arch;
  for (const cell of document.querySelectorAll(`${SEL.archTable} [data-arch]`)) {
    cell.classList.toggle('current', cell.dataset.arch === arch);
  }
  $(SEL.archNote).textContent = `This server runs ${FACTS.model.name} (${arch} family). `
    + 'GPT-2 runs when its files are given with app.py --model.';
  modelCard.render($(SEL.modelCard), modelCard.load());
  optimizations.renderExplain($(SEL.optExplain));
}

async function importFile(e) {
  try {
    const run = await importRun(e.target.files[0]);
    writeForm(run.header.request);
    nav.showRun(run);
    runs.status(`Imported run ${run.id}: ${run.steps.length} steps.`);
  } catch (err) {
    runs.showError(err);
  }
  e.target.value = '';
}

function bindControls() {
  $(SEL.form).addEventListener('submit', (e) => { e.preventDefault(); runs.generate(); });
  $(SEL.stop).addEventListener('click', runs.stop);
  $(SEL.prev).addEventListener('click', nav.prev);
  $(SEL.next).addEventListener('click', nav.next);
  $(SEL.play).addEventListener('click', nav.togglePlay);
  $(SEL.slider).addEventListener('input', (e) => nav.goTo(Number(e.target.value)));
  $(SEL.batching).addEventListener('change', (e) => { $(SEL.batchBox).hidden = !e.target.checked; });
  const togglePresenter = () => presenter.toggle($(SEL.presenter));
  $(SEL.presenter).addEventListener('click', togglePresenter);
  $(SEL.permalink).addEventListener('click', async () => runs.status(await copyPermalink()));
  $(SEL.exportBtn).addEventListener('click', () => state.run && exportRun(state.run));
  $(SEL.importFile).addEventListener('change', importFile);
  presenter.bindKeys({ next: () => nav.keyStep(nav.next), prev: () => nav.keyStep(nav.prev),
    generate: () => runs.generate(), togglePresenter });
}

function init() {
  setUpForm();
  nav.setActions({ continueFrom: runs.continueFrom, recreate: runs.recreate });
  nav.buildPipeline();
  overview.init($(SEL.overview), { ...overview.controls(), nLayers: FACTS.model.config.n_layers });
  describeModel();
  bindControls();
  $(SEL.generate).disabled = false;             // disabled in the HTML until the page can handle it
  nav.renderStage();
  nav.renderTiming();

  const { settings, view } = readURL();
  if (view.stage) set({ stage: view.stage });
  if (view.layer !== null) set({ layer: view.layer });
  if (view.head !== null) set({ head: view.head });
  if (settings) {
    writeForm(settings);
    runs.generate({ ...settings, batching: false }, view);
  }
}

init();
