// The current view (run, step, stage, layer, head) and its mirror in the URL, so any
// view can be shared as a permalink: the prompt and settings re-create the run (same
// seed, same tokens), the rest re-opens the same step, stage, layer and head.
import { STAGE_KEYS } from './constants.js';
import { FACTS, REQUEST_FIELDS } from './facts.js';

export const state = {
  run: null,          // {id, header, steps[], done, timings, stats, text, imported}
  step: 0,
  stage: 'tokenization',
  layer: 0,
  head: 0,
  follow: true,       // jump to each new step as it streams in
  playing: true,      // the animation (auto-advance) is running
  history: [],        // earlier runs, for the timing comparison
};

// Browsers throttle history.replaceState when called many times a second (as while
// tokens stream in), so the URL is written at most every URL_WRITE_MS, always with the latest state.
const URL_WRITE_MS = 250;
let urlTimer = null;

export function set(patch) {
  Object.assign(state, patch);
  if (!urlTimer) urlTimer = setTimeout(() => { urlTimer = null; writeURL(); }, URL_WRITE_MS);
}

// The run's own settings (including the seed it really used) go into the URL.
export function writeURL() {
  const params = new URLSearchParams();
  const req = state.run && state.run.header && state.run.header.request;
  if (req) {
    for (const k of REQUEST_FIELDS) {
      const v = req[k];
      if (v === null || v === undefined || (Array.isArray(v) && !v.length)) continue;
      params.set(k, Array.isArray(v) ? v.join(',') : String(v));
    }
    params.set('step', state.step);
  }
  params.set('stage', state.stage);
  params.set('layer', state.layer);
  params.set('head', state.head);
  history.replaceState(null, '', `${location.pathname}?${params}`);
}

// One URL parameter -> the field's value, by the field's type; absent means the server's default.
function parseParam(raw, spec) {
  if (raw === null || raw === '') return spec.default;
  if (spec.type === 'int') return Number.parseInt(raw, 10);
  if (spec.type === 'number') return Number(raw);
  if (spec.type === 'bool') return raw === 'true';
  if (spec.type === 'ids') return raw.split(',').map(Number);
  return raw;
}

// -> {settings (or null when the URL has no prompt), view {step, stage, layer, head}}
export function readURL() {
  const p = new URLSearchParams(location.search);
  const int = (k) => (p.has(k) && p.get(k) !== '' ? Number.parseInt(p.get(k), 10) : null);
  const view = {
    step: int('step'), layer: int('layer'), head: int('head'),
    stage: STAGE_KEYS.includes(p.get('stage')) ? p.get('stage') : null,
  };
  if (!p.get('prompt')) return { settings: null, view };
  const settings = Object.fromEntries(REQUEST_FIELDS.map((k) => [k, parseParam(p.get(k), FACTS.fields[k])]));
  return { settings, view };
}

export function currentStep() {
  return state.run && state.run.steps[state.step];
}
