"""The HTML page, the vendored plotly.js and the health check (no JSON API here)."""
from pathlib import Path

import plotly
from flask import Blueprint, current_app, jsonify, render_template, send_file

from .errors import error_response
from .facts import page_facts
from .validation import Limits

bp = Blueprint("pages", __name__)

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@bp.get("/")
def index():
    model = current_app.extensions["llmviz"]["models"].get("fp32")
    boot = page_facts(model, Limits.from_config(current_app.config))
    return render_template("index.html", boot=boot)


@bp.get("/vendor/plotly.min.js")
def plotly_js():
    """plotly.js as bundled in the installed `plotly` Python package: no CDN, works offline."""
    return send_file(PLOTLY_JS, mimetype="text/javascript", max_age=24 * 3600)


@bp.get("/healthz")
def healthz():
    """200 while this process can serve runs; 503 (the API's error shape) when its run store is down."""
    shared = current_app.extensions["llmviz"]
    problem = shared["runs"].health()
    if problem:
        return error_response(503, problem)
    return jsonify({"status": "ok", "models_loaded": shared["models"].loaded(), "store": shared["runs"].kind})
