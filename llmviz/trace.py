"""The record of one run: what the page, the API and the tests read.

A Recorder is handed to forward() and keeps the named arrays of one forward pass
("layers.3.attn.probs", ...). A Step is one forward pass of the model plus the
sampling decision that followed it. A Trace is the run: prompt tokens and steps.

Compact JSON (`Trace.summary()`, `Step.summary()`) is small enough to stream per
step; the large parts (attention matrices, embedding vectors, logit lens) are
computed from the stored arrays on request (`attention()`, `embedding()`,
`logit_lens()`, `feedforward()`). docs/api.md describes every field.

Every view of a step describes one position, the step's focus: the input row whose
prediction produced the last token the step emitted. For a plain step it is the last
input position; for a speculative verify pass it is the row after the accepted drafts
(not the last draft row). forward() keeps per-position vectors for the rows whose
logits it returns (the last row, or all γ+1 rows of a verify pass), so the focus row
is always among them.
"""
from dataclasses import dataclass, field

import numpy as np

from .ops import softmax
from .sampling import draw_intervals, tempered

TOP_N = 10        # candidates shown for prediction and sampling
LENS_TOP = 5      # tokens shown per layer in the logit lens


class Recorder:
    """Collects the intermediates of one forward pass by flat name."""

    def __init__(self):
        self.data = {}

    def __call__(self, name, value):
        self.data[name] = value


def top_ids(x, n):
    """Indices of the n largest values, largest first: O(V), not a full sort of the vocabulary."""
    n = min(n, x.size)
    part = np.argpartition(-x, n - 1)[:n]
    return part[np.argsort(-x[part], kind="stable")]


class TokenDicts(dict):
    """token_dict(tok, i) for any i, each made once (a summary names the same tokens several times)."""

    def __init__(self, tok):
        super().__init__()
        self.tok = tok

    def __call__(self, i):
        i = int(i)
        if i not in self:
            self[i] = token_dict(self.tok, i)
        return self[i]


def mean_abs(a) -> float:
    return round(float(np.mean(np.abs(a))), 4)


def r4(a):
    """Round for JSON: 4 significant decimals is plenty for a picture."""
    return np.round(np.asarray(a, np.float64), 4).tolist()


def token_dict(tok, i):
    return {"id": int(i), "text": tok.piece(i), "special": tok.is_special(i)}


@dataclass
class Step:
    index: int
    kind: str                      # "prefill" (the whole prompt) or "decode" (one new token)
    input_ids: list                # tokens computed in this forward pass
    start: int                     # position of the first of them
    reused_rows: int               # K/V rows taken from the cache instead of recomputed
    cache_bytes: int               # bytes of K/V held after this step
    logits: np.ndarray             # [V] of the focus row, float32
    focus: int                     # row of input_ids whose prediction gave the last emitted token
    sampling: dict                 # settings, u, final probs
    emitted: list                  # token ids this step added to the text
    seconds: dict                  # stage -> wall seconds
    rec: dict = field(default_factory=dict)   # Recorder.data (empty when not tracing)
    extra: dict = field(default_factory=dict)  # e.g. speculative-decoding details

    def summary(self, tok, n_layers) -> dict:
        probs = softmax(self.logits)
        order = top_ids(self.logits, TOP_N)
        token = TokenDicts(tok)                                            # each token looked up once
        out = {
            "index": self.index,
            "kind": self.kind,
            "positions": [self.start, self.start + len(self.input_ids)],
            "focus_position": self.focus_position,
            "input_tokens": [token(i) for i in self.input_ids],
            "kv": {"reused_rows": self.reused_rows, "computed_rows": len(self.input_ids),
                   "cache_bytes": self.cache_bytes},
            "top": [{**token(i), "logit": round(float(self.logits[i]), 4),
                     "prob": round(float(probs[i]), 6)} for i in order],
            "sampling": self.sampling_summary(token, probs, order),
            "emitted": [token(i) for i in self.emitted],
            "timings_ms": {k: round(v * 1000, 3) for k, v in self.seconds.items()},
            **self.extra,
        }
        if self.rec:
            out["residual_norms"] = r4([self.rec[f"layers.{i}.resid_norm"] for i in range(n_layers)])  # [L, T]
            out["attention_focus"] = [np.argmax(self.rec[f"layers.{i}.attn.probs"][:, self.focus], axis=-1).tolist()
                                      for i in range(n_layers)]     # per layer and head: the key most attended
        return out

    @property
    def focus_position(self) -> int:
        return self.start + self.focus

    def at_focus(self, name):
        """A per-position recording ([R, ...], the last R input rows) at the focus row."""
        a = self.rec[name]
        return a[self.focus - (len(self.input_ids) - a.shape[0])]

    def sampling_summary(self, token, probs, order) -> dict:
        """token: i -> its token_dict."""
        s, final = self.sampling, self.sampling["probs"]
        t = s["temperature"]
        p_temp = probs if t in (0.0, 1.0) else tempered(self.logits, t)
        ids = list(order) + [i for i in self.emitted[:1] if i not in set(order)]
        walk = None if s["u"] is None else draw_intervals(final)            # the draw's walk (sampled only)
        return {
            "temperature": t, "top_k": s["top_k"], "top_p": s["top_p"], "greedy": t == 0.0,
            "u": s["u"], "kept": int(np.count_nonzero(final)) if walk is None else int(walk[0].size),
            "candidates": [{**token(i), "p_model": round(float(probs[i]), 6),
                            "p_temperature": round(float(p_temp[i]), 6),
                            "p_final": round(float(final[i]), 6)} for i in ids],
            "chosen": token(s["chosen"]),
            "draw_order": "descending p_final, ties by lower token id",
            "draw": None if walk is None else self.draw_summary(token, final, s["chosen"], walk),
        }

    @staticmethod
    def draw_summary(token, final, chosen, walk) -> list:
        """The start of the draw's walk (sampling.draw_intervals: ids, starts, ends): the TOP_N most
        likely tokens in the order the draw visits them, plus the chosen token if it comes later,
        each with its rank in the walk and its cumulative interval [start, end) of [0, 1)."""
        ids, starts, ends = walk
        ranks = list(range(min(TOP_N, ids.size)))
        ranks += [int(k) for k in np.flatnonzero(ids == chosen) if k >= TOP_N]
        return [{**token(ids[k]), "rank": k, "p": round(float(final[ids[k]]), 6),
                 "start": float(starts[k]), "end": float(ends[k])} for k in ranks]


@dataclass
class Trace:
    model: object
    settings: dict
    prompt_ids: list
    steps: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    @property
    def tok(self):
        return self.model.tokenizer

    def all_ids(self):
        return list(self.prompt_ids) + [i for s in self.steps for i in s.emitted]

    def summary(self) -> dict:
        from .model import run_model
        cfg = self.model.config
        return {
            "model": run_model(self.model),
            "settings": self.settings,
            "prompt_tokens": [token_dict(self.tok, i) for i in self.prompt_ids],
            "steps": [s.summary(self.tok, cfg.n_layers) for s in self.steps],
            "timings": self.timings,
        }

    def _rec(self, step, name):
        if not 0 <= step < len(self.steps):
            raise IndexError(f"step {step} does not exist (this run has {len(self.steps)} steps)")
        rec = self.steps[step].rec
        if not rec:
            raise LookupError("this run was not traced")
        return rec if name is None else rec[name]

    def attention(self, step: int, layer: int) -> dict:
        """Attention probabilities of every head: [H, T, S] (T queries of this step, S keys)."""
        if not 0 <= layer < self.model.config.n_layers:
            raise IndexError(f"layer {layer} does not exist (the model has {self.model.config.n_layers})")
        probs = self._rec(step, f"layers.{layer}.attn.probs")
        st = self.steps[step]
        # the keys are the cached text plus this pass's own inputs (for a speculative step
        # these include draft tokens that were later rejected)
        keys = (self.all_ids()[: st.start] + list(st.input_ids))[: probs.shape[-1]]
        return {"step": step, "layer": layer,
                "query_positions": list(range(st.start, st.start + len(st.input_ids))),
                "focus_position": st.focus_position,
                "key_tokens": [token_dict(self.tok, i) for i in keys],
                "cached_keys": st.reused_rows,
                "probs": r4(probs)}

    def embedding(self, step: int) -> dict:
        rec = self._rec(step, None)
        st = self.steps[step]
        vec = rec["embed.tokens"]                                        # [T, D]
        out = {"step": step, "tokens": [token_dict(self.tok, i) for i in st.input_ids],
               "focus_position": st.focus_position,
               "vectors": r4(vec), "norms": r4(np.linalg.norm(vec, axis=-1))}
        if "embed.positions" in rec:
            out["position"] = {"kind": "learned", "vectors": r4(rec["embed.positions"])}
        else:
            out["position"] = {"kind": "rope", "angles": r4(rec["embed.rope_angles"]),
                               "theta": self.model.config.rope_theta}
        if len(vec) >= 2:                                                # 2-D PCA of the token vectors
            centered = vec - vec.mean(axis=0)
            _, sv, vt = np.linalg.svd(centered, full_matrices=False)
            out["pca"] = {"points": r4(centered @ vt[:2].T),
                          "explained": r4(sv[:2] ** 2 / max(float((sv ** 2).sum()), 1e-12))}
        return out

    def feedforward(self, step: int, layer: int, bins: int = 40, top: int = 12) -> dict:
        """The feed-forward activations of one layer at the step's focus position."""
        self._rec(step, f"layers.{layer}.ffn.act")
        st = self.steps[step]
        act = st.at_focus(f"layers.{layer}.ffn.act")                     # [F]
        counts, edges = np.histogram(act, bins=bins)
        order = top_ids(np.abs(act), top)
        return {"step": step, "layer": layer, "size": int(act.size), "focus_position": st.focus_position,
                "histogram": {"counts": counts.tolist(), "edges": r4(edges)},
                "top_neurons": [{"index": int(i), "value": round(float(act[i]), 4)} for i in order],
                "mean_abs": mean_abs(act),
                "residual_norms": [r4(st.rec[f"layers.{i}.resid_norm"][st.focus])
                                   for i in range(self.model.config.n_layers)]}

    def feedforward_activity(self, step: int) -> list:
        """Per layer, at the focus position: the feed-forward activations' mean |value| and the
        residual stream's norm after the layer (what feedforward() reports, for every layer at once)."""
        self._rec(step, None)
        st = self.steps[step]
        return [{"mean_abs": mean_abs(st.at_focus(f"layers.{i}.ffn.act")),
                 "resid_norm": r4(st.rec[f"layers.{i}.resid_norm"][st.focus])}
                for i in range(self.model.config.n_layers)]

    def logit_lens(self, step: int) -> dict:
        """What each layer's residual stream at the focus position would predict if decoding stopped there."""
        from .forward import final_hidden_to_logits
        L = self.model.config.n_layers
        self._rec(step, None)
        st = self.steps[step]
        resid = np.stack([st.at_focus(f"layers.{i}.resid") for i in range(L)])    # [L, D]
        probs = softmax(final_hidden_to_logits(self.model, resid))      # [L, V]
        layers = []
        for layer in range(L):
            order = top_ids(probs[layer], LENS_TOP)
            layers.append([{**token_dict(self.tok, i), "prob": round(float(probs[layer, i]), 5)} for i in order])
        return {"step": step, "focus_position": st.focus_position, "layers": layers}
