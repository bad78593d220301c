"""The forward pass of a decoder-only transformer, as small block functions.

    x = embed(tokens)                               token (+ learned position) vectors
    for each layer:  x = x + attention(norm(x))     positions: RoPE on q and k, or learned (above)
                     x = x + ffn(norm(x))
    logits = norm(x) @ lm_head

The two families differ only in the parts listed in FAMILIES:
    llama (Touvron et al. 2023): RMSNorm, rotary positions, grouped-query attention, SwiGLU, no biases
    gpt2  (Radford et al. 2019): LayerNorm, learned positions, multi-head attention, GELU, biases

Canonical weights (all `x @ W`, i.e. [in, out]; the loaders produce exactly these):
    tok_emb [V, D]   pos_emb [P, D] (gpt2)   lm_head [D, V]   final_norm.{w,b}
    layers.i.attn_norm.{w,b}   layers.i.attn.wqkv [D, (H+2Hkv)d]  .bqkv   .wo [Hd, D]  .bo
    layers.i.ffn_norm.{w,b}    layers.i.ffn.w_gate_up [D, 2F] (llama) | w_up [D, F], b_up (gpt2)
                               layers.i.ffn.w_down [F, D]  .b_down

Each sequence (batch row) owns a KVCache; rows may be at different lengths
(continuous batching), so attention runs per row while every weight matrix is
multiplied once for the whole batch (see linear()).

Intermediates go to optional recorders, one per row, called as
rec("layers.3.attn.probs", array) through record(); with no recorder nothing extra is
computed. Per-position vectors (feed-forward activations, the residual stream) are kept
for the rows whose logits forward() returns: the last row, or every row with all_logits
(a speculative verify pass), never every row of a long prefill.
Shape legend: llmviz/config.py.
"""
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import ops


class KVCache:
    """Keys and values of one sequence, preallocated. k, v: [L, Hkv, S_max, d]

    Only forward() fills it (store, then advance); truncate() is the only way back."""

    def __init__(self, cfg, max_len: int):
        shape = (cfg.n_layers, cfg.n_kv_heads, max_len, cfg.d_head)
        self.k = np.zeros(shape, np.float32)
        self.v = np.zeros(shape, np.float32)
        self._length = 0         # positions filled so far
        self.max_len = max_len

    @property
    def length(self) -> int:
        return self._length

    @property
    def nbytes_used(self) -> int:
        return 2 * self.k[:, :, : self._length].nbytes

    def store(self, layer, k, v):
        """Write the K/V rows of the positions after `length`; k, v [Hkv, T, d]
        -> every key and value of this layer so far, [Hkv, length + T, d] each."""
        end = self._length + k.shape[1]
        self.k[layer, :, self._length:end] = k
        self.v[layer, :, self._length:end] = v
        return self.k[layer, :, :end], self.v[layer, :, :end]

    def advance(self, n):
        """The n rows just stored in every layer now belong to the sequence."""
        self._length += n

    def truncate(self, n):
        """Forget every position from n on (rejected draft tokens, a recompute from scratch)."""
        if not 0 <= n <= self._length:
            raise ValueError(f"cannot truncate a KV cache of {self._length} positions to {n}")
        self._length = n


class StageClock:
    """Accumulates wall time per pipeline stage (seconds)."""

    def __init__(self):
        self.seconds = {"embed": 0.0, "attention": 0.0, "feedforward": 0.0, "prediction": 0.0}
        self.t = time.perf_counter()

    def lap(self, stage):
        now = time.perf_counter()
        self.seconds[stage] += now - self.t
        self.t = now


# -- the two families ---------------------------------------------------------------------

def rms_norm(x, w, prefix, eps):
    return ops.rms_norm(x, w[prefix + ".w"], eps)


def layer_norm(x, w, prefix, eps):
    return ops.layer_norm(x, w[prefix + ".w"], w[prefix + ".b"], eps)


def swiglu_hidden(h, w, p, F):
    """SwiGLU's hidden layer: one matmul for gate and up. [B, T, D] -> [B, T, F]"""
    gu = linear(h, w[p + "ffn.w_gate_up"])                                # [B, T, D] -> [B, T, 2F]
    return ops.swiglu(gu[..., :F], gu[..., F:])                           # [B, T, F]


def gelu_hidden(h, w, p, F):
    """GPT-2's hidden layer. [B, T, D] -> [B, T, F]"""
    return ops.gelu_tanh(linear(h, w[p + "ffn.w_up"], w[p + "ffn.b_up"]))  # [B, T, D] -> [B, T, F]


@dataclass(frozen=True)
class Family:
    norm: Callable            # (x, weights, prefix, eps) -> normalized x
    ffn_hidden: Callable      # (h, weights, layer prefix, F) -> [B, T, F] activations
    biases: bool              # attention and feed-forward matmuls add a bias
    positions: str            # "rope" (rotate q and k) or "learned" (pos_emb added to x)


FAMILIES = {
    "llama": Family(norm=rms_norm, ffn_hidden=swiglu_hidden, biases=False, positions="rope"),
    "gpt2": Family(norm=layer_norm, ffn_hidden=gelu_hidden, biases=True, positions="learned"),
}


# -- helpers ----------------------------------------------------------------------------------

def record(recs, name, value_fn):
    """Give each row's recorder value_fn(b); computes nothing for rows (or batches) not recording."""
    for b, rec in enumerate(recs or ()):
        if rec is not None:
            rec(name, value_fn(b))


GEMV_ROWS = 4   # up to this many rows, one gemv per row beats one gemm (measured, OpenBLAS)


def linear(x, w, b=None):
    """x [..., in] @ w [in, out] (+ b [out]) -> [..., out], computed so that BLAS reads w as few times as it can.

    NumPy runs a 3-D `x @ w` as one gemv per row, each streaming all of w from memory; a 2-D
    [N, in] @ w is one gemm, which reads w once but first copies (packs) it, so it costs about
    as much as four gemv's. Few rows: per-row gemv; more rows: flatten to one gemm. Quantized
    matrices always get the 2-D product `rows @ w` (one fused-kernel call for all rows, quant.py)."""
    rows = x.reshape(-1, x.shape[-1])                                     # [N, in]
    if rows.shape[0] == 1:                                                # decode: one gemv
        out = rows[0] @ w
    elif rows.shape[0] <= GEMV_ROWS and isinstance(w, np.ndarray):
        out = np.stack([r @ w for r in rows])                             # N x gemv
    else:
        out = rows @ w                                                    # one gemm
    out = out.reshape(x.shape[:-1] + (out.shape[-1],))                    # [..., out]
    return out if b is None else out + b


def bias(w, family, name):
    return w[name] if family.biases else None


# -- the blocks -------------------------------------------------------------------------------

def embed(model, tokens, starts, recs):
    """tokens [B, T] at positions starts[b] ... -> x [B, T, D], and the RoPE tables of every
    row (cos, sin: [B, 1, T, 2, d/2], one row per sequence, shared by its heads) for attention
    (None with learned positions)."""
    cfg, w, fam = model.config, model.weights, FAMILIES[model.config.arch]
    T = tokens.shape[1]
    positions = np.stack([np.arange(s, s + T) for s in starts])           # [B, T]
    x = w["tok_emb"][tokens]                                              # [B, T] -> [B, T, D]
    record(recs, "embed.tokens", lambda b: x[b].copy())                   # [T, D]
    if fam.positions == "learned":
        pos = w["pos_emb"][positions]                                     # [B, T, D]
        record(recs, "embed.positions", lambda b: pos[b].copy())
        return x + pos, None
    angles = [ops.rope_angles(p, cfg.d_head, cfg.rope_theta) for p in positions]  # B x [T, d/2]
    record(recs, "embed.rope_angles", lambda b: angles[b])
    cos, sin = ops.rope_tables(np.stack(angles))                          # [B, T, 2, d/2] each
    return x, (cos[:, None], sin[:, None])


def attention_block(model, i, x, caches, rope, recs):
    """Layer i's attention on the normalized residual stream, with each row's own cache.
    x [B, T, D] -> the block's output [B, T, D] (to be added to x)."""
    cfg, w, fam = model.config, model.weights, FAMILIES[model.config.arch]
    B, T, _ = x.shape
    H, Hkv, d, p = cfg.n_heads, cfg.n_kv_heads, cfg.d_head, f"layers.{i}."
    h = fam.norm(x, w, p + "attn_norm", cfg.norm_eps)                      # [B, T, D]
    qkv = linear(h, w[p + "attn.wqkv"], bias(w, fam, p + "attn.bqkv"))     # [B, T, D] -> [B, T, (H+2Hkv)d]
    qk = qkv[..., : (H + Hkv) * d].reshape(B, T, H + Hkv, d).transpose(0, 2, 1, 3)  # [B, H+Hkv, T, d]
    v = qkv[..., (H + Hkv) * d:].reshape(B, T, Hkv, d).transpose(0, 2, 1, 3)         # [B, Hkv, T, d]
    if rope is not None:
        qk = ops.apply_rope(qk, *rope)                                     # rotate q and k of every row at once
    out = np.empty((B, H, T, d), np.float32)
    probs = [None] * B
    for b, cache in enumerate(caches):
        qkb = qk[b]                                                        # [H+Hkv, T, d]
        s0 = cache.length
        keys, values = cache.store(i, qkb[H:], v[b])                       # [Hkv, S, d] each, S = s0 + T
        # causal mask: query t (at position s0 + t) sees keys 0 .. s0 + t
        mask = None if T == 1 else np.arange(s0 + T)[None, :] <= (s0 + np.arange(T))[:, None]  # [T, S]
        out[b], probs[b] = ops.attention(qkb[:H], keys, values, mask)     # [H, T, d], [H, T, S]
    record(recs, p + "attn.probs", lambda b: probs[b])
    heads = out.transpose(0, 2, 1, 3).reshape(B, T, H * d)                # [B, H, T, d] -> [B, T, Hd]
    return linear(heads, w[p + "attn.wo"], bias(w, fam, p + "attn.bo"))   # [B, T, Hd] -> [B, T, D]


def ffn_block(model, i, x, recs, kept_rows):
    """Layer i's feed-forward network on the normalized residual stream.
    x [B, T, D] -> the block's output [B, T, D]; records the activations of the last kept_rows rows."""
    cfg, w, fam = model.config, model.weights, FAMILIES[model.config.arch]
    p = f"layers.{i}."
    h = fam.norm(x, w, p + "ffn_norm", cfg.norm_eps)                       # [B, T, D]
    act = fam.ffn_hidden(h, w, p, cfg.d_ff)                                # [B, T, F]
    record(recs, p + "ffn.act", lambda b: act[b, -kept_rows:].copy())      # [R, F]
    return linear(act, w[p + "ffn.w_down"], bias(w, fam, p + "ffn.b_down"))  # [B, T, F] -> [B, T, D]


def record_residual(recs, i, x, kept_rows):
    """The residual stream after layer i: its size at every position, the vector at the last kept_rows."""
    if recs is None:
        return
    norms = np.sqrt((x * x).sum(axis=-1))                                             # [B, T], every row at once
    record(recs, f"layers.{i}.resid_norm", lambda b: norms[b])                        # [T]
    record(recs, f"layers.{i}.resid", lambda b: x[b, -kept_rows:].copy())            # [R, D]


def unembed(model, x):
    """Final norm, then the unembedding. [..., D] -> logits [..., V]"""
    fam = FAMILIES[model.config.arch]
    h = fam.norm(x, model.weights, "final_norm", model.config.norm_eps)    # [..., D]
    return linear(h, model.weights["lm_head"])                             # [..., D] -> [..., V]


def forward(model, tokens, caches, recs=None, clock=None, all_logits=False, n_layers=None):
    """Run T new tokens of B sequences through the model, appending to their caches.

    tokens [B, T] int; caches: B KVCache; recs: None or B recorders (each None or callable).
    Returns logits [B, T, V] (all_logits) or [B, 1, V].
    n_layers < L gives the early-exit model (first layers, then final norm and unembedding).
    """
    clock = clock or StageClock()
    T = tokens.shape[1]
    if any(c.length + T > c.max_len for c in caches):                      # each row against its own cache
        raise ValueError("KV cache is full")
    recs = recs if recs is not None and any(r is not None for r in recs) else None
    kept_rows = T if all_logits else 1                                     # rows whose vectors are recorded
    x, rope = embed(model, tokens, [c.length for c in caches], recs)       # [B, T, D]
    clock.lap("embed")
    for i in range(model.config.n_layers if n_layers is None else n_layers):
        x = x + attention_block(model, i, x, caches, rope, recs)          # [B, T, D]
        clock.lap("attention")
        x = x + ffn_block(model, i, x, recs, kept_rows)                   # [B, T, D]
        record_residual(recs, i, x, kept_rows)
        clock.lap("feedforward")
    for c in caches:
        c.advance(T)
    logits = unembed(model, x if all_logits else x[:, -1:])                # [B, T or 1, V]
    clock.lap("prediction")
    return logits


def final_hidden_to_logits(model, resid):
    """The logit lens (nostalgebraist 2020): final norm + unembedding applied to any
    layer's residual stream. [..., D] -> [..., V]"""
    return unembed(model, resid)
