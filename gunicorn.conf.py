"""Production serving for llmviz:  gunicorn -c gunicorn.conf.py   (docs/production.md)

Environment:
  LLMVIZ_BIND       address to listen on (default 127.0.0.1:8000; put a proxy in front for other hosts)
  LLMVIZ_WORKERS    worker processes (default 1, see below)
  LLMVIZ_THREADS    threads per worker (default 32)
  LLMVIZ_BLAS_THREADS  OpenBLAS/OpenMP threads per worker (default 1, see below)
  LLMVIZ_*          any other app setting (llmviz/web/__init__.py, limits.py, validation.py), e.g.
                    LLMVIZ_MAX_ACTIVE=8 LLMVIZ_MODEL_PATH=/models/x.gguf; values are parsed as JSON when
                    they can be (numbers, true/false), otherwise taken as text.

One worker by default: a run (its trace, read lazily by the page's detail requests) lives
in the memory of the process that computed it, and gunicorn spreads requests over workers
without affinity, so with N workers about (N-1)/N of the page's detail requests would miss
their run. One process also lets the continuous-batching scheduler batch every student's
run together. Threads serve the many concurrent streams and detail requests; the forward
passes release the GIL inside NumPy. More workers do share the memory-mapped weights
(measured in docs/production.md) and are right for a deployment with sticky sessions.
"""
import json
import os

NOT_APP_SETTINGS = {"LLMVIZ_BIND", "LLMVIZ_WORKERS", "LLMVIZ_THREADS", "LLMVIZ_BLAS_THREADS"}

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


# 16 runs at once = the scheduler's batch size: in the 30-client load test this doubled the
# total tokens/s of a cap of 4 (docs/production.md); worst-case trace memory 16 x 1 GiB.
# Keep up to 256 runs so that a class of 30 making several runs each does not evict a run a
# student is still looking at; the trace byte budget (LLMVIZ_MAX_STORED_BYTES) is the real bound.
app_config = {"LLMVIZ_WARMUP": True, "LLMVIZ_ENV": "production", "LLMVIZ_MAX_ACTIVE": 16, "LLMVIZ_MAX_RUNS": 256}
app_config.update({k: env_value(v) for k, v in os.environ.items()
                   if k.startswith("LLMVIZ_") and k not in NOT_APP_SETTINGS})

wsgi_app = f"llmviz.web:create_app({app_config!r})"
bind = os.environ.get("LLMVIZ_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("LLMVIZ_WORKERS", 1))
worker_class = "gthread"
threads = int(os.environ.get("LLMVIZ_THREADS", 32))
# The app starts a scheduler thread in create_app; threads do not survive fork, so each
# worker builds its own app (the weights are memory-mapped, so this costs no copy).
preload_app = False
timeout = 60                  # heartbeat: a gthread worker stays alive while a long stream is sent
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = "info"
