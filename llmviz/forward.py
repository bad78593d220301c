"""The forward pass of a decoder-only transformer, both families in one function.

    llama (Touvron et al. 2023): RMSNorm, rotary positions, grouped-query attention, SwiGLU
    gpt2  (Radford et al. 2019): LayerNorm, learned positions, multi-head attention, GELU

Canonical weights (all `x @ W`, i.e. [in, out]):
    tok_emb [V, D]   pos_emb [P, D] (gpt2)   lm_head [D, V]   final_norm.{w,b}
    layers.i.attn_norm.{w,b}   layers.i.attn.wqkv [D, (H+2Hkv)d]  .bqkv   .wo [Hd, D]  .bo
    layers.i.ffn_norm.{w,b}    layers.i.ffn.w_gate_up [D, 2F] (llama) | w_up [D, F], b_up (gpt2)
                               layers.i.ffn.w_down [F, D]  .b_down

Each sequence (batch row) owns a KVCache; rows may be at different lengths
(continuous batching), so attention runs per row while every weight matrix is
read once for the whole batch.

Intermediates go to optional recorders, one per row, called as
rec("layers.3.attn.probs", array); with recs=None nothing extra is computed.
"""
import time

import numpy as np

from . import ops


class KVCache:
    """Keys and values of one sequence, preallocated. k, v: [L, Hkv, S_max, d]"""

    def __init__(self, cfg, max_len: int):
        shape = (cfg.n_layers, cfg.n_kv_heads, max_len, cfg.d_head)
        self.k = np.zeros(shape, np.float32)
        self.v = np.zeros(shape, np.float32)
        self.length = 0          # positions filled so far
        self.max_len = max_len

    @property
    def nbytes_used(self) -> int:
        return 2 * self.k[:, :, : self.length].nbytes


class StageClock:
    """Accumulates wall time per pipeline stage (seconds)."""

    def __init__(self):
        self.seconds = {"embed": 0.0, "attention": 0.0, "feedforward": 0.0, "prediction": 0.0}
        self.t = time.perf_counter()

    def lap(self, stage):
        now = time.perf_counter()
        self.seconds[stage] += now - self.t
        self.t = now


def norm(w, prefix, x, cfg):
    if cfg.arch == "llama":
        return ops.rms_norm(x, w[prefix + ".w"], cfg.norm_eps)
    return ops.layer_norm(x, w[prefix + ".w"], w[prefix + ".b"], cfg.norm_eps)


GEMV_ROWS = 4   # up to this many rows, one gemv per row beats one gemm (measured, OpenBLAS)


def linear(x, w):
    """x [..., in] @ w [in, out] -> [..., out], computed so that BLAS reads w as few times as it can.

    NumPy runs a 3-D `x @ w` as one gemv per row, each streaming all of w from memory; a 2-D
    [N, in] @ w is one gemm, which reads w once but first copies (packs) it, so it costs about
    as much as four gemv's. Few rows: per-row gemv; more rows: flatten to one gemm. Quantized
    matrices always get the 2-D product (they dequantize per call)."""
    rows = x.reshape(-1, x.shape[-1])                                     # [N, in]
    if rows.shape[0] == 1:                                                # decode: one gemv
        return (rows[0] @ w).reshape(x.shape[:-1] + (w.shape[-1],))
    if rows.shape[0] <= GEMV_ROWS and isinstance(w, np.ndarray):
        out = np.stack([r @ w for r in rows])                             # N x gemv
    else:
        out = rows @ w                                                    # one gemm
    return out.reshape(x.shape[:-1] + (out.shape[-1],))


def forward(model, tokens, caches, recs=None, clock=None, all_logits=False, n_layers=None):
    """Run T new tokens of B sequences through the model, appending to their caches.

    tokens [B, T] int; caches: B KVCache; recs: None or B recorders (each None or callable).
    Returns logits [B, T, V] (all_logits) or [B, 1, V].
    n_layers < L gives the early-exit model (first layers, then final norm and unembedding).
    """
    cfg, w = model.config, model.weights
    clock = clock or StageClock()
    B, T = tokens.shape
    H, Hkv, d, F = cfg.n_heads, cfg.n_kv_heads, cfg.d_head, cfg.d_ff
    L = cfg.n_layers if n_layers is None else n_layers
    starts = [c.length for c in caches]
    recs = recs if recs is not None and any(r is not None for r in recs) else None
    if any(s + T > c.max_len for s, c in zip(starts, caches)):      # each row against its own cache
        raise ValueError("KV cache is full")

    # -- embedding ------------------------------------------------------------
    x = w["tok_emb"][tokens]                                              # [B, T, D]
    positions = [np.arange(s, s + T) for s in starts]                     # B x [T]
    if recs is not None:
        for b, rec in enumerate(recs):
            if rec is not None:
                rec("embed.tokens", x[b].copy())
    if cfg.arch == "gpt2":
        pos_vec = w["pos_emb"][np.stack(positions)]                       # [B, T, D]
        x = x + pos_vec
        for b, rec in enumerate(recs or ()):
            if rec is not None:
                rec("embed.positions", pos_vec[b].copy())
    else:
        rope = [ops.rope_angles(p, d, cfg.rope_theta) for p in positions]  # B x [T, d/2]
        cos_sin = [ops.rope_tables(a) for a in rope]                      # B x ([T, 2, d/2], [T, 2, d/2])
        for b, rec in enumerate(recs or ()):
            if rec is not None:
                rec("embed.rope_angles", rope[b])
    clock.lap("embed")

    for i in range(L):
        p = f"layers.{i}."
        # -- attention -----------------------------------------------------------
        h = norm(w, p + "attn_norm", x, cfg)
        qkv = linear(h, w[p + "attn.wqkv"])                                      # [B, T, D] -> [B, T, (H+2Hkv)d]
        if cfg.arch == "gpt2":
            qkv = qkv + w[p + "attn.bqkv"]
        qk = qkv[..., : (H + Hkv) * d].reshape(B, T, H + Hkv, d).transpose(0, 2, 1, 3)  # [B, H+Hkv, T, d]
        v = qkv[..., (H + Hkv) * d:].reshape(B, T, Hkv, d).transpose(0, 2, 1, 3)         # [B, Hkv, T, d]
        out = np.empty((B, H, T, d), np.float32)
        for b, cache in enumerate(caches):
            qkb = qk[b]
            if cfg.arch == "llama":                                       # rotate q and k in one go
                qkb = ops.apply_rope(qkb, *cos_sin[b])
            qb, kb = qkb[:H], qkb[H:]                                     # [H, T, d], [Hkv, T, d]
            s0, S = starts[b], starts[b] + T
            cache.k[i, :, s0:S] = kb
            cache.v[i, :, s0:S] = v[b]
            # causal mask: query t (at position s0 + t) sees keys 0 .. s0 + t
            mask = None if T == 1 else (np.arange(S)[None, :] <= (s0 + np.arange(T))[:, None])  # [T, S]
            out[b], probs = ops.attention(qb, cache.k[i, :, :S], cache.v[i, :, :S], mask)  # [H, T, d], [H, T, S]
            if recs is not None and recs[b] is not None:
                recs[b](p + "attn.probs", probs)
        att = linear(out.transpose(0, 2, 1, 3).reshape(B, T, H * d), w[p + "attn.wo"])  # [B, T, Hd] -> [B, T, D]
        if cfg.arch == "gpt2":
            att = att + w[p + "attn.bo"]
        x = x + att
        clock.lap("attention")

        # -- feed-forward ----------------------------------------------------------
        h = norm(w, p + "ffn_norm", x, cfg)
        if cfg.arch == "llama":
            gu = linear(h, w[p + "ffn.w_gate_up"])                               # [B, T, D] -> [B, T, 2F]
            act = ops.swiglu(gu[..., :F], gu[..., F:])                    # [B, T, F]
        else:
            act = ops.gelu_tanh(linear(h, w[p + "ffn.w_up"]) + w[p + "ffn.b_up"])  # [B, T, F]
        ffn = linear(act, w[p + "ffn.w_down"])                                   # [B, T, F] -> [B, T, D]
        if cfg.arch == "gpt2":
            ffn = ffn + w[p + "ffn.b_down"]
        x = x + ffn
        for b, rec in enumerate(recs or ()):
            if rec is not None:
                rec(p + "ffn.act", act[b, -1].copy())                     # [F], last position
                rec(p + "resid_norm", np.linalg.norm(x[b], axis=-1))      # [T], residual stream size
                rec(p + "resid_last", x[b, -1].copy())                    # [D], for the logit lens
        clock.lap("feedforward")

    for c in caches:
        c.length += T

    # -- prediction --------------------------------------------------------------
    if not all_logits:
        x = x[:, -1:]                                                     # only the next token is needed
    x = norm(w, "final_norm", x, cfg)
    logits = linear(x, w["lm_head"])                                           # [B, T, D] -> [B, T, V]
    clock.lap("prediction")
    return logits


def final_hidden_to_logits(model, resid):
    """The logit lens (nostalgebraist 2020): final norm + unembedding applied to any
    layer's residual stream. [..., D] -> [..., V]"""
    return norm(model.weights, "final_norm", resid, model.config) @ model.weights["lm_head"]
