"""One step of a run as the overview picture draws it: the whole pipeline on one screen.

The page's overview (static/js/views/overview.js) shows a step left to right: the input
tokens, their embeddings, every block with the residual stream running through it, the
prediction, the sampling draw and the token that goes back into the input. This module
gathers what that picture needs from a run's record, in one small JSON document, so a
step costs the page one request (GET /api/runs/<id>/steps/<s>/overview):

* the logit lens's top-1 token per layer (nostalgebraist 2020, "interpreting GPT: the
  logit lens"): the prediction forming with depth;
* the residual stream's norm and the feed-forward activity (mean |activation|) per layer;
* the selected layer's attention of the focus query, averaged over heads, as arcs;
* the KV cache after the step: which positions it holds and which rows this step wrote;
* each block's weight bytes and bits per weight (quantization, llmviz/quant.py);
* the step summary's prediction, sampling draw, drafts and emitted tokens (trace.py).

Everything is read through Trace's public accessors, so the overview shows exactly what
the stage views and their JSON endpoints show.
"""
import time

import numpy as np

from .trace import r4, token_dict

EMBED_CELLS = 24        # numbers of each embedding vector drawn as a colour strip
EMBED_TOKENS = 10       # strips drawn (the step's last input tokens)
TOP_BARS = 5            # probability bars of the prediction


def weight_size(w) -> tuple:
    """-> (bytes as stored, number of weights) of an array or a quantized matrix."""
    return int(w.nbytes), int(np.prod(w.shape))


def block_weights(model) -> list:
    """Bytes and bits per weight of every block's tensors (matrices, norms, biases)."""
    sums = [[0, 0] for _ in range(model.config.n_layers)]               # [bytes, weights] per block
    for name, w in model.weights.items():
        if name.startswith("layers."):
            nbytes, count = weight_size(w)
            layer = sums[int(name.split(".")[1])]
            layer[0] += nbytes
            layer[1] += count
    return [{"bytes": b, "bits_per_weight": round(8.0 * b / n, 2)} for b, n in sums]


def unembedding_weights(model) -> dict:
    nbytes, count = weight_size(model.weights["lm_head"])
    return {"bytes": nbytes, "bits_per_weight": round(8.0 * nbytes / count, 2),
            "tied": model.config.tied_embeddings}


def kv_cells(summary, kv_cache: bool) -> dict:
    """The KV cache after the step: `held` positions, of which the last `computed` were
    written by this step (all of them with the cache off, where every step starts empty);
    a speculative step also wrote rows for rejected drafts, dropped again (`discarded`)."""
    start, end = summary["positions"]
    discarded = (summary.get("speculative") or {}).get("discarded_rows", 0)
    held = end - discarded
    reused = summary["kv"]["reused_rows"]
    return {"on": kv_cache, "held": held, "reused": reused, "computed": held - reused,
            "discarded": discarded, "bytes": summary["kv"]["cache_bytes"]}


def drafts(summary, tok) -> list:
    """Every draft token of a speculative step: the first `accepted` were kept; verification
    stops at the first rejection, so the ones after it were never checked and are dropped too."""
    spec = summary.get("speculative") or {}
    return [{**token_dict(tok, t), "accepted": i < spec["accepted"], "checked": i < len(spec["decisions"])}
            for i, t in enumerate(spec.get("draft_tokens", []))]


def embedding_strips(emb: dict, focus: int, start: int) -> dict:
    """The last EMBED_TOKENS input vectors, EMBED_CELLS evenly spaced numbers each, and the
    position information of the focus token (RoPE angles, or GPT-2's learned vector)."""
    vec = np.asarray(emb["vectors"], np.float32)                      # [T, D]
    dims = np.linspace(0, vec.shape[1] - 1, EMBED_CELLS).round().astype(int)
    shown = vec[-EMBED_TOKENS:]                                       # [t, D]
    out = {"dims": dims.tolist(), "width": int(vec.shape[1]),
           "first_position": start + len(vec) - len(shown), "strips": r4(shown[:, dims]),
           "scale": round(float(np.abs(shown[:, dims]).max()) or 1.0, 4)}
    row = min(max(focus - start, 0), len(vec) - 1)
    out["focus_norm"] = emb["norms"][row]                             # size of the stream before layer 0
    pos = emb["position"]
    if pos["kind"] == "rope":
        angles = np.asarray(pos["angles"], np.float32)[row]           # [d/2]
        out["position"] = {"kind": "rope", "position": start + row, "cos": r4(np.cos(angles))}
    else:
        pv = np.asarray(pos["vectors"], np.float32)[row]              # [D]
        out["position"] = {"kind": "learned", "position": start + row, "values": r4(pv[dims])}
    return out


def attention_arcs(att: dict, focus: int) -> dict:
    """The focus query's attention over every key, averaged over the heads: one weight per key."""
    probs = np.asarray(att["probs"], np.float32)                      # [H, T, S]
    row = min(max(focus - att["query_positions"][0], 0), probs.shape[1] - 1)
    weights = probs[:, row].mean(axis=0)                              # [H, S] -> [S]
    return {"layer": att["layer"], "query_position": att["query_positions"][row], "heads": int(probs.shape[0]),
            "keys": att["key_tokens"], "weights": r4(weights), "cached_keys": att["cached_keys"]}


def step_overview(trace, summary: dict, model, layer: int) -> dict:
    """One step's overview (see the module docstring). `summary` is the step's summary as
    the run stored it (with draft tokens as text); `layer` selects the attention arcs."""
    t0 = time.perf_counter()
    s = summary["index"]
    focus = summary["focus_position"]                                 # what lens, arcs and top describe
    lens = trace.logit_lens(s)["layers"]                              # L x top-5
    activity = trace.feedforward_activity(s)                          # L x {mean_abs, residual norm}
    blocks = block_weights(model)
    layers = [{"layer": i, "lens": lens[i][0], "resid_norm": activity[i]["resid_norm"],
               "ffn_mean_abs": activity[i]["mean_abs"],
               "weight_bytes": blocks[i]["bytes"], "bits_per_weight": blocks[i]["bits_per_weight"]}
              for i in range(model.config.n_layers)]
    sampling = summary["sampling"]
    return {
        "step": s, "kind": summary["kind"], "positions": summary["positions"], "focus_position": focus,
        "model": {"arch": model.config.arch, "n_layers": model.config.n_layers, "d_model": model.config.d_model,
                  "vocab_size": model.config.vocab_size, "quantization": model.quantization},
        "input_tokens": summary["input_tokens"],
        "timings_ms": summary["timings_ms"],
        "embedding": embedding_strips(trace.embedding(s), focus, summary["positions"][0]),
        "layers": layers,
        "attention": attention_arcs(trace.attention(s, layer), focus),
        "kv": kv_cells(summary, bool(trace.settings.get("kv_cache", True))),
        "unembedding": unembedding_weights(model),
        "top": summary["top"][:TOP_BARS],
        "sampling": {"greedy": sampling["greedy"], "u": sampling["u"], "temperature": sampling["temperature"],
                     "kept": sampling["kept"], "chosen": sampling["chosen"], "draw": sampling["draw"]},
        "speculative": summary.get("speculative"),
        "drafts": drafts(summary, model.tokenizer),
        "batch_size": summary.get("batch_size", 1),
        "emitted": summary["emitted"],
        "compute_ms": round((time.perf_counter() - t0) * 1000, 2),
    }
