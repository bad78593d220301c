// The current view (run, step, stage, layer, head) and its mirror in the URL, so any
// view can be shared as a permalink: the prompt and settings re-create the run (same
// seed, same tokens), the rest re-opens the same step, stage, layer and head.
import { STAGE_KEYS } from './constants.js';

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

const SETTING_KEYS = ['prompt', 'chat', 'max_new_tokens', 'temperature', 'top_k', 'top_p', 'seed', 'kv_cache',
  'quantization', 'speculative', 'num_draft_tokens', 'forced_ids'];

// The run's own settings (including the seed it really used) go into the URL.
export function writeURL() {
  const params = new URLSearchParams();
  const req = state.run && state.run.header && state.run.header.request;
  if (req) {
    for (const k of SETTING_KEYS) {
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

// -> {settings (or null when the URL has no prompt), view {step, stage, layer, head}}
export function readURL() {
  const p = new URLSearchParams(location.search);
  const int = (k) => (p.has(k) && p.get(k) !== '' ? Number.parseInt(p.get(k), 10) : null);
  const num = (k) => (p.has(k) && p.get(k) !== '' ? Number(p.get(k)) : null);
  const view = {
    step: int('step'), layer: int('layer'), head: int('head'),
    stage: STAGE_KEYS.includes(p.get('stage')) ? p.get('stage') : null,
  };
  if (!p.get('prompt')) return { settings: null, view };
  const settings = {
    prompt: p.get('prompt'), chat: p.get('chat') === 'true', max_new_tokens: int('max_new_tokens'),
    temperature: num('temperature'), top_k: int('top_k'), top_p: num('top_p'), seed: int('seed'),
    kv_cache: p.get('kv_cache') !== 'false', quantization: p.get('quantization') || 'fp32',
    speculative: p.get('speculative') || null, num_draft_tokens: int('num_draft_tokens'),
    forced_ids: p.get('forced_ids') ? p.get('forced_ids').split(',').map(Number) : [],
  };
  return { settings, view };
}

export function currentStep() {
  return state.run && state.run.steps[state.step];
}
