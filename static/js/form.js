// Reading and filling the prompt-and-settings form.
import { $ } from './dom.js';

const num = (id) => {
  const v = $(`#${id}`).value.trim();
  return v === '' ? null : Number(v);
};

export function readForm() {
  const spec = $('#speculative').checked && !$('#speculative').disabled;
  return {
    prompt: $('#prompt').value,
    chat: $('#chat').checked,
    max_new_tokens: num('max_new_tokens'),
    temperature: num('temperature') ?? 0,
    top_k: num('top_k'),
    top_p: num('top_p'),
    seed: num('seed'),
    kv_cache: $('#kv_cache').checked,
    quantization: $('#quantization').value,
    speculative: spec ? $('#spec_source').value : null,
    num_draft_tokens: num('num_draft_tokens') ?? 4,
    batching: $('#batching').checked && !$('#batching').disabled,
  };
}

export function writeForm(s) {
  const setVal = (id, v) => { $(`#${id}`).value = v === null || v === undefined ? '' : String(v); };
  setVal('prompt', s.prompt);
  $('#chat').checked = !!s.chat;
  for (const k of ['max_new_tokens', 'temperature', 'top_k', 'top_p', 'seed']) setVal(k, s[k]);
  $('#kv_cache').checked = s.kv_cache !== false;
  if (s.quantization) setVal('quantization', s.quantization);
  $('#speculative').checked = !!s.speculative;
  if (s.speculative) setVal('spec_source', s.speculative);
  if (s.num_draft_tokens) setVal('num_draft_tokens', s.num_draft_tokens);
}

// The fields POST /api/stream accepts (docs/api.md); anything else is refused by the server.
const API_FIELDS = ['prompt', 'chat', 'max_new_tokens', 'temperature', 'top_k', 'top_p', 'seed', 'kv_cache',
  'quantization', 'speculative', 'num_draft_tokens', 'forced_ids'];

export function requestBody(settings) {
  return Object.fromEntries(API_FIELDS.filter((k) => settings[k] !== undefined).map((k) => [k, settings[k]]));
}

export function batchPrompts() {
  return $('#batch-prompts').value.split('\n').map((p) => p.trim()).filter(Boolean);
}
