"""The facts the page and the API share, each defined once (issue 12).

- `model_card(model)` (llmviz/model.py): one loaded model (name, architecture, bytes, parameters). GET /api/model,
  the boot JSON, every run's header (runs.py), a trace's summary and `python -m llmviz info` use it.
- `QUANTIZATIONS`: the weight formats of llmviz.quant, each with its real size for this model
  (`quant.model_nbytes`, from the shapes) and bits per parameter derived from that size.
- `DRAFT_SOURCES`: the speculative-decoding drafts a request may name (llmviz/speculative.py).
- `fields(cfg, limits)`: every request field with its range and default. validation.py checks
  requests against it and the page's form takes its min, max and default from it.
- `trace.TOP_N`, `trace.LENS_TOP`: how many candidates a step and the logit lens keep.

`page_facts(model, limits)` bundles them; the page reads that dict from
<script id="boot" type="application/json"> and GET /api/model returns the same dict, so a
limit, a name or a width is never typed a second time in Python, HTML or JavaScript.
"""
import functools
import os
import platform
from pathlib import Path

import plotly

from llmviz import quant, trace
from llmviz.generate import GenerationRequest
from llmviz.model import model_card, parameter_count

QUANTIZATIONS = quant.KINDS
QUANT_LABELS = {                       # what each format stores (quant.py's docstring has the details)
    "fp32": "float32, 4 bytes per weight",
    "int8": "int8, one float32 scale per output channel",
    "int8-g32": "int8, one float32 scale per 32 weights",
    "int4": "int4 (two per byte), a float32 scale and minimum per 32 weights",
}
DRAFT_SOURCES = {                      # name in a request -> label on the page
    "prompt-lookup": "prompt lookup",
    "early-exit": "early exit",
}
REQUEST_FIELDS = ("prompt", "chat", "max_new_tokens", "temperature", "top_k", "top_p", "seed", "kv_cache",
                  "quantization", "speculative", "num_draft_tokens", "forced_ids")   # docs/api.md
ENGINE_DEFAULTS = GenerationRequest()   # the engine's own defaults, for the fields a web request shares with it
DEFAULTS = {
    **{k: getattr(ENGINE_DEFAULTS, k) for k in ("temperature", "top_k", "top_p", "seed", "kv_cache", "speculative",
                                                "num_draft_tokens")},
    "forced_ids": list(ENGINE_DEFAULTS.forced_ids),
    "chat": False,                     # web only: wrap the prompt in the model's chat template
    "max_new_tokens": 24,              # web only: short enough to watch stream in, long enough to say something
    "quantization": "fp32",            # web only: the registry's model for the request
}


def quantizations(model) -> list:
    """Every weight format with its size for this (fp32) model, computed from shapes (nothing is quantized)."""
    params = parameter_count(model)
    out = []
    for kind in QUANTIZATIONS:
        nbytes = quant.model_nbytes(model, kind)
        out.append({"name": kind, "label": QUANT_LABELS.get(kind, kind),
                    "bits_per_weight": round(8 * nbytes / params, 2), "weight_bytes": nbytes})
    return out


def fields(cfg, limits) -> dict:
    """Request field -> {"type", "min", "max", "default", ...}: the one statement of what a request may
    carry. "min_exclusive" marks an open lower bound; "choices" lists the names a text field takes."""
    return {
        "prompt": {"type": "text", "max_tokens": limits.max_prompt_tokens, "default": ""},
        "chat": {"type": "bool", "default": DEFAULTS["chat"]},
        "max_new_tokens": {"type": "int", "min": 1, "max": limits.max_new_tokens,
                           "default": min(DEFAULTS["max_new_tokens"], limits.max_new_tokens)},
        "temperature": {"type": "number", "min": 0, "max": limits.max_temperature,
                        "default": DEFAULTS["temperature"]},
        "top_k": {"type": "int", "min": 1, "max": cfg.vocab_size, "default": DEFAULTS["top_k"]},
        "top_p": {"type": "number", "min": 0, "min_exclusive": True, "max": 1, "default": DEFAULTS["top_p"]},
        "seed": {"type": "int", "min": 0, "max": limits.max_seed, "default": DEFAULTS["seed"]},
        "kv_cache": {"type": "bool", "default": DEFAULTS["kv_cache"]},
        "quantization": {"type": "choice", "choices": list(QUANTIZATIONS), "default": DEFAULTS["quantization"]},
        "speculative": {"type": "choice", "choices": list(DRAFT_SOURCES), "nullable": True,
                        "default": DEFAULTS["speculative"]},
        "num_draft_tokens": {"type": "int", "min": 1, "max": limits.max_draft_tokens,
                             "default": DEFAULTS["num_draft_tokens"]},
        "forced_ids": {"type": "ids", "min": 0, "max": cfg.vocab_size - 1, "default": DEFAULTS["forced_ids"]},
        "prompts": {"type": "texts", "min": 1, "max": limits.max_batch_prompts, "default": None},
    }


@functools.cache
def machine() -> dict:
    """The computer the engine runs on, as the page names it: the CPU count (os.cpu_count())
    and the CPU's model name (/proc/cpuinfo on Linux, else platform.machine())."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count() or 1, "description": f"{name}, {platform.system()}"}


def page_facts(model, limits) -> dict:
    """Everything the page needs before its first run (the boot JSON), for the fp32 `model`."""
    return {"model": model_card(model), "quantizations": quantizations(model),
            "draft_sources": [{"name": k, "label": v} for k, v in DRAFT_SOURCES.items()],
            "fields": fields(model.config, limits), "lens_top": trace.LENS_TOP, "top_n": trace.TOP_N,
            "machine": machine(), "plotly_version": plotly.__version__}
