// Talks to the server: JSON endpoints, the Server-Sent-Events stream, and a small detail cache.

export class ApiError extends Error {
  constructor(status, message, field = null) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

async function unpack(response) {
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const e = body && body.error;
    const message = e ? e.message : `the server answered ${response.status}`;
    throw new ApiError(response.status, message, e ? e.field : null);
  }
  return body;
}

export async function getJSON(url) {
  return unpack(await fetch(url, { headers: { Accept: 'application/json' } }));
}

async function postJSON(url, body) {
  const headers = { 'Content-Type': 'application/json' };
  return unpack(await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) }));
}

// POST /api/stream and call handlers[event](data) for each event as it arrives.
export async function streamRun(body, handlers, signal) {
  const response = await fetch('/api/stream', {
    method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
    body: JSON.stringify(body), signal,
  });
  if (!response.ok) await unpack(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let ended = false;                            // a done or error event came: anything else is a lost connection
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block);
      const data = /^data: (.*)$/m.exec(block);
      if (event && data && handlers[event[1]]) handlers[event[1]](JSON.parse(data[1]));
      if (event && (event[1] === 'done' || event[1] === 'error')) ended = true;
    }
  }
  if (!ended) throw new ApiError(0, 'the connection to the server closed before the run finished; try again');
}

const cache = new Map();
const CACHE_LIMIT = 200;

// Lazy per-step detail (attention, embedding, feed-forward, logit lens), fetched once.
export function detail(runId, path) {
  const url = `/api/runs/${encodeURIComponent(runId)}/steps/${path}`;
  if (!cache.has(url)) {
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value);
    const p = getJSON(url);
    p.catch(() => cache.delete(url));
    cache.set(url, p);
  }
  return cache.get(url);
}

export const attention = (id, step, layer) => detail(id, `${step}/attention/${layer}`);
export const embedding = (id, step) => detail(id, `${step}/embedding`);
export const feedforward = (id, step, layer) => detail(id, `${step}/feedforward/${layer}`);
export const logitLens = (id, step) => detail(id, `${step}/logit-lens`);
export const runBatch = (body) => postJSON('/api/batch', body);
