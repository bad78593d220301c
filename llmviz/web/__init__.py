"""The llmviz web app: a Flask application factory (the Flask tutorial's "flaskr" layout).

Two blueprints: `pages` serves the one HTML page and the vendored plotly.js,
`api` serves JSON and the Server-Sent-Events stream. The loaded model is shared
read-only through `app.extensions["llmviz"]` (see `registry.py`); every run keeps
its own KV cache and trace in the run store (`runs.py`).
"""
from pathlib import Path

from flask import Flask

import llmviz

from .errors import register_error_handlers
from .limits import DEFAULTS as LIMIT_DEFAULTS
from .limits import register_limits
from .registry import ModelRegistry
from .runs import RunStore
from .security import register_security

ROOT = Path(__file__).resolve().parents[2]      # the repository: templates/ and static/ live here

DEFAULTS = {
    "LLMVIZ_MODEL_PATH": None,      # None -> the default model (SmolLM2-135M-Instruct)
    "LLMVIZ_MODEL": None,           # an already loaded fp32 Model (tests share one per session)
    "LLMVIZ_MAX_RUNS": 24,          # runs kept in memory (least recently used dropped first)
    "LLMVIZ_MAX_ACTIVE": 4,         # generations computing at once; more get 429
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
    app.extensions["llmviz"] = {
        "models": registry,
        "runs": RunStore(app.config["LLMVIZ_MAX_RUNS"], app.config["LLMVIZ_MAX_ACTIVE"],
                         app.config["LLMVIZ_MAX_STORED_BYTES"]),
        "scheduler": llmviz.Scheduler(max_batch=16) if app.config["LLMVIZ_SCHEDULER"] else None,
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
    return app
