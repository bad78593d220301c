"""Production serving for llmviz:  gunicorn -c gunicorn.conf.py   (docs/production.md)

Environment:
  LLMVIZ_BIND       address to listen on (default 127.0.0.1:8000; put a proxy in front for other hosts)
  LLMVIZ_REDIS_URL  the shared run store, e.g. redis://127.0.0.1:6379/0; with it, several workers
  LLMVIZ_WORKERS    worker processes (default: one per core with LLMVIZ_REDIS_URL, else 1; see below)
  LLMVIZ_MAX_ACTIVE runs computing at once per worker, batched together (default 16)
  LLMVIZ_MAX_QUEUE  requests waiting in line per worker; beyond it 429 (default 64)
  LLMVIZ_THREADS    threads per worker (default MAX_ACTIVE + MAX_QUEUE + 32: every waiting or computing
                    stream holds a thread, and the page's detail requests need free ones)
  LLMVIZ_BLAS_THREADS  OpenBLAS/OpenMP threads per worker (default 1, see below)
  LLMVIZ_ACCEPT_DELAY  with several workers, seconds a worker waits per connection it is serving
                    before it accepts a new one (default 0.005; llmviz/web/worker.py)
  LLMVIZ_PIN_WORKERS   with several workers (at most one per core), each runs on a core of its own;
                    0 turns it off (default 1)
  LLMVIZ_*          any other app setting (llmviz/web/__init__.py, limits.py, validation.py), e.g.
                    LLMVIZ_MODEL_PATH=/models/x.gguf; values are parsed as JSON when they can be
                    (numbers, true/false), otherwise taken as text.

Workers: each has its own continuous-batching scheduler and its own line, so the class's total
throughput grows with the cores. A run must then be readable by every worker (gunicorn, and a
reverse proxy in front of several machines, spread requests with no affinity), which is what the
Redis run store gives. Without LLMVIZ_REDIS_URL a run lives in the memory of the worker that
computed it, so the default is then one worker; LLMVIZ_WORKERS=N without Redis only suits a
deployment with sticky sessions. Workers share the memory-mapped weights (docs/production.md).
"""
import json
import os

NOT_APP_SETTINGS = {"LLMVIZ_BIND", "LLMVIZ_WORKERS", "LLMVIZ_THREADS", "LLMVIZ_BLAS_THREADS", "LLMVIZ_ACCEPT_DELAY",
                    "LLMVIZ_PIN_WORKERS"}

# One BLAS thread per worker. The forward passes multiply small matrices ([rows, 576] @
# [576, 1536]), where OpenBLAS's extra threads mostly spin waiting for each other; next to a
# scheduler thread and request threads on 2 cores they made 16 tokens take 8 CPU-seconds
# instead of 0.7 (measured on this machine under load, docs/production.md). Set before the
# workers import NumPy; they inherit the environment.
for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(name, os.environ.get("LLMVIZ_BLAS_THREADS", "1"))


def env_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


# 16 runs at once = one scheduler batch: in the 30-client load test this doubled the total
# tokens/s of a cap of 4 (docs/production.md); worst-case trace memory 16 x 1 GiB.
# Keep up to 256 runs in memory so that a class of 30 making several runs each does not evict a
# run a student is still looking at; the trace byte budget (LLMVIZ_MAX_STORED_BYTES) is the real
# bound, and in Redis the TTL too.
app_config = {"LLMVIZ_WARMUP": True, "LLMVIZ_ENV": "production", "LLMVIZ_MAX_ACTIVE": 16, "LLMVIZ_MAX_QUEUE": 64,
              "LLMVIZ_MAX_RUNS": 256}
app_config.update({k: env_value(v) for k, v in os.environ.items()
                   if k.startswith("LLMVIZ_") and k not in NOT_APP_SETTINGS})
shared_store = bool(app_config.get("LLMVIZ_REDIS_URL"))
if shared_store and "LLMVIZ_MAX_RUNS" not in os.environ:
    app_config["LLMVIZ_MAX_RUNS"] = 10_000    # in Redis the byte budget and the TTL are the bounds

wsgi_app = f"llmviz.web:create_app({app_config!r})"
bind = os.environ.get("LLMVIZ_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("LLMVIZ_WORKERS", os.cpu_count() if shared_store else 1))
# Threads (a stream holds one while it waits or computes); with several workers, the one serving
# fewer connections accepts the next (llmviz/web/worker.py), so a class splits evenly between them.
worker_class = "llmviz.web.worker.LeastBusyWorker" if workers > 1 else "gthread"
# The fused int8/int4 kernels (numba) use every core by default: with one worker per core, one
# thread each, so the workers do not fight over the cores (llmviz/kernels.py).
if workers > 1:
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
threads = int(os.environ.get("LLMVIZ_THREADS",
                             app_config["LLMVIZ_MAX_ACTIVE"] + app_config["LLMVIZ_MAX_QUEUE"] + 32))
# The app starts a scheduler thread in create_app; threads do not survive fork, so each
# worker builds its own app (the weights are memory-mapped, so this costs no copy).
preload_app = False
timeout = 60                  # heartbeat: a gthread worker stays alive while a long stream is sent
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = "info"


# One worker per core, each pinned to its own (like nginx's worker_cpu_affinity auto): in the
# 30-stream test this gave 124-128 tokens/s instead of 117-121 (docs/production.md).
# LLMVIZ_PIN_WORKERS=0 turns it off.
pin_workers = (1 < workers <= (os.cpu_count() or 1) and hasattr(os, "sched_setaffinity")
               and os.environ.get("LLMVIZ_PIN_WORKERS", "1") != "0")


def pre_fork(server, worker):
    """In the master, before a worker (or its replacement) starts: choose its core."""
    if pin_workers:
        from llmviz.web.worker import free_core
        worker.core = free_core([getattr(w, "core", None) for w in server.WORKERS.values()], os.cpu_count())


def post_fork(server, worker):
    if pin_workers:
        os.sched_setaffinity(0, {worker.core})


def on_starting(server):
    if workers > 1 and not shared_store:
        server.log.warning("%d workers without LLMVIZ_REDIS_URL: each run lives in one worker's memory, so "
                           "without sticky sessions most detail requests miss their run", workers)
