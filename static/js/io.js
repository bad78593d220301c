// Sharing runs: the permalink (copied to the clipboard), export to a JSON file and import back.
import { writeURL } from './state.js';

export async function copyPermalink() {
  writeURL();
  const url = location.href;
  try {
    await navigator.clipboard.writeText(url);
    return `Permalink copied: opening it re-creates this run (same prompt, settings and seed) and view.`;
  } catch {
    return `Permalink (copy it from the address bar): ${url}`;
  }
}

export function exportRun(run) {
  const data = {
    format: 'llmviz-run', version: 1, exported: new Date().toISOString(),
    id: run.id, header: run.header, steps: run.steps, timings: run.timings || null, stats: run.stats || {},
  };
  const blob = new Blob([JSON.stringify(data, null, 1)], { type: 'application/json' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `llmviz-run-${run.id}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// Accepts a file made by exportRun or the JSON of GET /api/runs/<id>.
export async function importRun(file) {
  const data = JSON.parse(await file.text());
  const header = data.header || data;
  if (!header || !Array.isArray(data.steps) || !header.prompt_tokens || !header.request) {
    throw new Error('this file is not an llmviz run (expected "steps", "prompt_tokens" and "request")');
  }
  return { id: data.id, header, steps: data.steps, timings: data.timings, stats: data.stats || {}, done: true,
    imported: true };
}
