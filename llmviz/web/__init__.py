"""The llmviz web app: a Flask application factory (the Flask tutorial's "flaskr" layout).

Two blueprints: `pages` serves the one HTML page and the vendored plotly.js,
`api` serves JSON and the Server-Sent-Events stream. The loaded model is shared
read-only through `app.extensions["llmviz"]` (see `registry.py`); every run keeps
its own KV cache and trace in the run store: in memory (`runs.py`, the default) or,
with `LLMVIZ_REDIS_URL`, in Redis shared by every worker (`redis_store.py`). Runs beyond
`LLMVIZ_MAX_ACTIVE` wait in a bounded FIFO line (`admission.py`). `close_app(app)`
ends the app's scheduler thread and store connections (tests call it at teardown).
"""
import os
import socket
from pathlib import Path

from flask import Flask

import llmviz

from .admission import Admission
from .errors import register_error_handlers
from .limits import DEFAULTS as LIMIT_DEFAULTS
from .limits import register_limits
from .registry import ModelRegistry
from .runs import RunStore
from .security import register_security

ROOT = Path(__file__).resolve().parents[2]      # the repository: templates/ and static/ live here
HOST = socket.gethostname()                      # for X-Served-By

DEFAULTS = {
    "LLMVIZ_MODEL_PATH": None,      # None -> the default model (SmolLM2-135M-Instruct)
    "LLMVIZ_MODEL": None,           # an already loaded fp32 Model (tests share one per session)
    "LLMVIZ_MAX_RUNS": 24,          # runs kept in memory (least recently used dropped first)
    "LLMVIZ_MAX_ACTIVE": 4,         # generations computing at once (one scheduler batch); more wait in line
    "LLMVIZ_MAX_QUEUE": 64,         # requests waiting in line per process; beyond that 429 with Retry-After
    "LLMVIZ_REDIS_URL": None,       # e.g. redis://127.0.0.1:6379/0: runs shared by every worker (redis_store.py)
    "LLMVIZ_REDIS_PREFIX": "llmviz:",  # key prefix, so that several deployments can share one Redis
    "LLMVIZ_RUN_TTL": 24 * 3600,    # Redis store: seconds a run is kept after its last use
    "LLMVIZ_WARMUP": False,         # run one tiny generation at start so the first visitor waits less
    "LLMVIZ_SCHEDULER": True,       # continuous batching of concurrent runs (llmviz.scheduler)
    "MAX_CONTENT_LENGTH": 64 * 1024,
}


def create_app(config=None) -> Flask:
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config.update({**DEFAULTS, **LIMIT_DEFAULTS})
    app.config.update(config or {})
    app.json.sort_keys = False

    registry = ModelRegistry(app.config["LLMVIZ_MODEL_PATH"], preloaded=app.config["LLMVIZ_MODEL"])
    max_active = app.config["LLMVIZ_MAX_ACTIVE"]
    app.extensions["llmviz"] = {
        "models": registry,
        "runs": run_store(app.config, registry),
        "admission": Admission(max_active, app.config["LLMVIZ_MAX_QUEUE"]),
        # every admitted run joins the batch at once: the line above is the only place to wait
        "scheduler": llmviz.Scheduler(max_batch=max_active) if app.config["LLMVIZ_SCHEDULER"] else None,
    }
    if app.config["LLMVIZ_WARMUP"]:
        registry.warm_up()

    from .api import bp as api_bp
    from .pages import bp as pages_bp
    app.register_blueprint(pages_bp)
    app.register_blueprint(api_bp, url_prefix="/api")
    register_error_handlers(app)
    register_security(app)
    register_limits(app)
    app.after_request(add_served_by)
    return app


def add_served_by(response):
    """Which machine and process answered (several workers and machines serve one class): for
    operators and the load test (tools/loadtest.py), who can tell the workers apart without /proc."""
    response.headers["X-Served-By"] = f"{HOST}:{os.getpid()}"
    return response



def run_store(config, registry):
    if not config["LLMVIZ_REDIS_URL"]:
        return RunStore(config["LLMVIZ_MAX_RUNS"], config["LLMVIZ_MAX_STORED_BYTES"])
    from .redis_store import RedisRunStore
    return RedisRunStore(config["LLMVIZ_REDIS_URL"], registry, max_runs=config["LLMVIZ_MAX_RUNS"],
                         max_bytes=config["LLMVIZ_MAX_STORED_BYTES"], ttl=config["LLMVIZ_RUN_TTL"],
                         prefix=config["LLMVIZ_REDIS_PREFIX"])


def close_app(app):
    """End what create_app started: the scheduler thread (its open streams end) and the store's
    connections. Idempotent."""
    shared = app.extensions["llmviz"]
    if shared["scheduler"] is not None:
        shared["scheduler"].shutdown()
    shared["runs"].close()
