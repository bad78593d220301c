// The prompt-and-settings form: built from FACTS (ranges, defaults, formats, draft sources), read
// into a request and filled back from one (an imported run, a permalink, a clicked candidate).
import { $, el, fmtBytes } from './dom.js';
import { FACTS, REQUEST_FIELDS } from './facts.js';
import { FIELD_SEL, SEL } from './selectors.js';

const NUMBER_FIELDS = ['max_new_tokens', 'temperature', 'top_k', 'top_p', 'seed', 'num_draft_tokens'];
const CHECKBOX_FIELDS = ['chat', 'kv_cache'];

function num(field) {
  const v = $(FIELD_SEL[field]).value.trim();
  return v === '' ? null : Number(v);
}

// min/max/default of every input and the options of both selects, from the server's facts.
export function setUpForm() {
  for (const f of NUMBER_FIELDS) {
    const spec = FACTS.fields[f];
    const input = $(FIELD_SEL[f]);
    input.min = spec.min;            // an open bound (top-p > 0) is left to the server's message
    input.max = spec.max;
    if (spec.default !== null) input.value = spec.default;
  }
  for (const f of CHECKBOX_FIELDS) $(FIELD_SEL[f]).checked = FACTS.fields[f].default;
  const quantDefault = FACTS.fields.quantization.default;
  $(SEL.quantization).replaceChildren(...FACTS.quantizations.map((q) => el('option', {
    value: q.name, title: q.label, selected: q.name === quantDefault,
  }, `${q.name} (${q.bits_per_weight} bits/weight, ${fmtBytes(q.weight_bytes)})`)));
  $(SEL.specSource).replaceChildren(...FACTS.draft_sources.map((d) => el('option', { value: d.name }, d.label)));
}

export function readForm() {
  const out = { prompt: $(SEL.prompt).value, quantization: $(SEL.quantization).value };
  for (const f of CHECKBOX_FIELDS) out[f] = $(FIELD_SEL[f]).checked;
  for (const f of NUMBER_FIELDS) out[f] = num(f);
  out.speculative = $(SEL.speculative).checked ? $(SEL.specSource).value : null;
  out.batching = $(SEL.batching).checked;
  return out;
}

export function writeForm(s) {
  const setVal = (sel, v) => { $(sel).value = v === null || v === undefined ? '' : String(v); };
  setVal(SEL.prompt, s.prompt);
  for (const f of CHECKBOX_FIELDS) $(FIELD_SEL[f]).checked = s[f] ?? FACTS.fields[f].default;
  for (const f of NUMBER_FIELDS) setVal(FIELD_SEL[f], s[f]);
  if (s.quantization) setVal(SEL.quantization, s.quantization);
  $(SEL.speculative).checked = !!s.speculative;
  if (s.speculative) setVal(SEL.specSource, s.speculative);
}

export function requestBody(settings) {
  return Object.fromEntries(REQUEST_FIELDS.filter((k) => settings[k] !== undefined).map((k) => [k, settings[k]]));
}

export function batchPrompts() {
  return $(SEL.batchPrompts).value.split('\n').map((p) => p.trim()).filter(Boolean);
}
