// Every element the scripts look up, by id: defined once here, so index.html and the scripts
// cannot drift apart without one place showing it (the browser tests use the same ids).
export const SEL = {
  boot: '#boot',
  // the form
  form: '#run-form', prompt: '#prompt', chat: '#chat', maxNewTokens: '#max_new_tokens',
  temperature: '#temperature', topK: '#top_k', topP: '#top_p', seed: '#seed',
  kvCache: '#kv_cache', quantization: '#quantization', batching: '#batching', speculative: '#speculative',
  specSource: '#spec_source', numDraftTokens: '#num_draft_tokens', batchBox: '#batch-box',
  batchPrompts: '#batch-prompts', generate: '#generate', stop: '#stop',
  status: '#status', progress: '#progress', error: '#error',
  // output and navigation
  output: '#output-tokens', batchOutput: '#batch-output', pipeline: '#pipeline',
  stageTitle: '#stage-title', stageExplain: '#stage-explain', stageBody: '#stage-body',
  stepsList: '#steps-list', prev: '#prev-step', next: '#next-step', slider: '#step-slider', play: '#play',
  stepLabel: '#step-label',
  // panels and header buttons
  timing: '#timing', presenter: '#presenter-btn', permalink: '#permalink-btn', exportBtn: '#export-btn',
  importFile: '#import-file', archTable: '#arch-table', archNote: '#arch-note', optExplain: '#opt-explain',
  modelCard: '#model-card',
  // the overview picture (views/overview.js)
  overview: '#overview', overviewPanel: '#overview-panel', overviewNarration: '#overview-narration',
  overviewLegend: '#overview-legend', overviewSpeed: '#overview-speed', overviewReplay: '#overview-replay',
};

// The form control of each request field that has one (the field's name is the element's id).
export const FIELD_SEL = {
  prompt: SEL.prompt, chat: SEL.chat, max_new_tokens: SEL.maxNewTokens, temperature: SEL.temperature,
  top_k: SEL.topK, top_p: SEL.topP, seed: SEL.seed, kv_cache: SEL.kvCache, quantization: SEL.quantization,
  num_draft_tokens: SEL.numDraftTokens,
};
