"""Limits that keep a shared CPU server answering: run time, busy answers, the server's settings.

- `closing(steps)` closes a run's step iterator when its client goes away (a scheduler
  stream is cancelled). The per-run time limit itself is the Generation's
  (`GenerationRequest.time_limit_s`, checked between steps): the run ends with the tokens it
  has and says why. The same limit bounds how long a request waits in line (admission.py).
- Busy answers (429, 503) carry `Retry-After` (RFC 9110 10.2.3), so a client
  knows when to try again instead of hammering the server.
- `DEFAULTS` are the app-config keys of every limit, merged into create_app's defaults.
"""
DEFAULTS = {
    "LLMVIZ_RUN_SECONDS": 120,          # wall time one run may compute (and, before that, wait in line)
    "LLMVIZ_RETRY_AFTER": 5,            # seconds a busy answer (429/503) asks the client to wait
    "LLMVIZ_MAX_STORED_BYTES": 2 << 30,  # trace bytes kept in the run store; older runs evicted first
    "LLMVIZ_ENV": "production",         # "development" is the only setting that allows Flask debug
}


def closing(steps):
    """Yield from `steps`; when the consumer stops early (a client went away), close them.

    A scheduler stream's close() cancels its generation at the next step boundary. The run's
    time limit is the Generation's own (GenerationRequest.time_limit_s, checked between steps)."""
    try:
        yield from steps
    finally:
        getattr(steps, "close", lambda: None)()


def trace_nbytes(trace) -> int:
    """Bytes of the arrays a run's trace holds (what `validation.trace_bytes` estimates)."""
    total = 0
    for step in list(trace.steps):
        total += getattr(step.logits, "nbytes", 0) + getattr(step.sampling.get("probs"), "nbytes", 0)
        total += sum(getattr(a, "nbytes", 0) for a in step.rec.values())
    return total


def add_retry_after(response, seconds):
    if response.status_code in (429, 503) and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(seconds)
    return response


def register_limits(app):
    app.after_request(lambda response: add_retry_after(response, app.config["LLMVIZ_RETRY_AFTER"]))
