"""Weight-only quantization written by hand: int8 and int4 with scales, dequantized on the fly.

Formats (W is a weight used as `x @ W`, shape [in, out]; "groups" run along `in`,
the dimension a dot product sums over, so one scale covers 32 terms of one sum):

    int8        per output channel: q int8 [in, out], scale [out]       (LLM.int8's
                vector-wise quantization without the outlier part, Dettmers et al. 2022)
    int8-g32    groups of 32:      q int8 [in, out], scale [in/32, out]
    int4        groups of 32:      q in [-8, 7] packed two per byte, uint8 [in/2, out],
                scale [in/32, out]  (the symmetric block format of GPTQ/llama.cpp Q4_0,
                Frantar et al. 2023; round-to-nearest here, no error correction)

All are symmetric absmax: scale = max|w| / qmax, q = round(w / scale), w' = q * scale,
so |w - w'| <= scale / 2 for every weight. Scales are stored as float32.

`QuantizedMatrix` stands in for the float32 array in `model.weights`: `x @ qm`
dequantizes a block of input rows at a time and multiplies, so forward() runs
unchanged. That is the honest NumPy version: it reads fewer bytes from memory but
does more work per byte than a fused kernel (llama.cpp dequantizes inside the dot
product, in registers), so it is *slower* than float32 here; see docs/optimizations.md.

The token embedding of a tied model is the unembedding's transpose: it is stored once,
quantized, and looked up by dequantizing only the rows of the tokens asked for.
"""
from dataclasses import replace

import numpy as np

GROUP = 32
KINDS = ("fp32", "int8", "int8-g32", "int4")
BLOCK_ELEMS = 1 << 22          # dequantize at most this many weights at once (16 MB of float32)


# -- the number formats ------------------------------------------------------------

def quantize_int8_per_channel(w):
    """[in, out] float32 -> (q int8 [in, out], scale float32 [out])"""
    scale = np.abs(w).max(axis=0) * (1.0 / 127.0)                      # [out]
    scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)         # [in, out]
    return q, scale


def dequantize_int8_per_channel(q, scale):
    """[in, out] int8, [out] -> [in, out] float32"""
    return q.astype(np.float32) * scale


def group_absmax(w, qmax):
    """[in, out] -> scale [in/32, out] float32, each covering 32 consecutive input rows."""
    n_in, n_out = w.shape
    if n_in % GROUP:
        raise ValueError(f"input dimension {n_in} is not a multiple of the group size {GROUP}")
    g = np.abs(w.reshape(n_in // GROUP, GROUP, n_out)).max(axis=1)     # [in/32, out]
    return np.where(g == 0, 1.0, g * (1.0 / qmax)).astype(np.float32)


def expand_groups(scale):
    """[in/32, out] -> [in, out] (each scale repeated over its 32 rows)"""
    return np.repeat(scale, GROUP, axis=0)


def quantize_int8_groups(w):
    """[in, out] float32 -> (q int8 [in, out], scale [in/32, out])"""
    scale = group_absmax(w, 127.0)
    q = np.clip(np.rint(w / expand_groups(scale)), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8_groups(q, scale):
    """[in, out] int8, [in/32, out] -> [in, out] float32"""
    n_in, n_out = q.shape
    return (q.reshape(n_in // GROUP, GROUP, n_out).astype(np.float32) * scale[:, None, :]).reshape(n_in, n_out)


def pack_int4(q):
    """[in, out] int8 in [-8, 7] -> [in/2, out] uint8: row 2i in the low nibble, row 2i+1 in the high."""
    u = (q + 8).astype(np.uint8)                                       # [in, out] in [0, 15]
    return u[0::2] | (u[1::2] << 4)


def unpack_int4(packed):
    """[in/2, out] uint8 -> [in, out] int8 in [-8, 7]"""
    n2, n_out = packed.shape
    q = np.empty((2 * n2, n_out), np.int8)
    q[0::2] = packed & 0x0F
    q[1::2] = packed >> 4
    q -= 8
    return q


def quantize_int4_groups(w):
    """[in, out] float32 -> (packed uint8 [in/2, out], scale [in/32, out]).

    scale = absmax / 7, so q = round(w / scale) lies in [-7, 7] (the code -8 is unused,
    keeping the grid symmetric and the error bound scale / 2)."""
    scale = group_absmax(w, 7.0)
    q = np.clip(np.rint(w / expand_groups(scale)), -8, 7).astype(np.int8)
    return pack_int4(q), scale


def dequantize_int4_groups(packed, scale):
    """[in/2, out] uint8, [in/32, out] -> [in, out] float32"""
    return dequantize_int8_groups(unpack_int4(packed), scale)


# -- a matrix that forward() can multiply by ---------------------------------------

class QuantizedMatrix:
    """A quantized [in, out] weight that behaves like the float32 array in `x @ W`."""

    __array_ufunc__ = None        # make NumPy hand `x @ qm` to __rmatmul__

    def __init__(self, kind, data, scale, shape):
        self.kind = kind          # "int8" | "int8-g32" | "int4"
        self.data = data          # int8 [in, out] or packed uint8 [in/2, out]
        self.scale = scale        # float32 [out] or [in/32, out]
        self.shape = tuple(shape)  # (in, out) of the float32 matrix it stands for
        self.dtype = np.dtype(np.float32)

    @classmethod
    def from_float(cls, w, kind):
        w = np.asarray(w, np.float32)
        quantize = {"int8": quantize_int8_per_channel, "int8-g32": quantize_int8_groups,
                    "int4": quantize_int4_groups}[kind]
        return cls(kind, *quantize(w), w.shape)

    @property
    def nbytes(self) -> int:
        """Bytes as stored: the integer codes plus the float32 scales."""
        return self.data.nbytes + self.scale.nbytes

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / (self.shape[0] * self.shape[1])

    def dequantize_rows(self, lo, hi):
        """Float32 rows lo:hi of the [in, out] matrix (lo, hi multiples of 32). -> [hi-lo, out]"""
        if self.kind == "int8":
            return dequantize_int8_per_channel(self.data[lo:hi], self.scale)
        g = slice(lo // GROUP, hi // GROUP)
        if self.kind == "int8-g32":
            return dequantize_int8_groups(self.data[lo:hi], self.scale[g])
        return dequantize_int4_groups(self.data[lo // 2: hi // 2], self.scale[g])

    def dequantize(self):
        return self.dequantize_rows(0, self.shape[0])

    def __rmatmul__(self, x):
        """x [..., in] @ W -> [..., out], summing over blocks of input rows so that at most
        BLOCK_ELEMS weights are dequantized at any moment."""
        n_in, n_out = self.shape
        per_channel = self.kind == "int8"  # its scale factors out of the sum: apply it once at the end
        rows = max(GROUP, (BLOCK_ELEMS // n_out) // GROUP * GROUP)
        out = np.zeros(x.shape[:-1] + (n_out,), np.float32)
        for lo in range(0, n_in, rows):
            hi = min(n_in, lo + rows)
            w = self.data[lo:hi].astype(np.float32) if per_channel else self.dequantize_rows(lo, hi)
            out += x[..., lo:hi] @ w                                    # [..., r] @ [r, out]
        return out * self.scale if per_channel else out

    @property
    def T(self):
        return TransposedRows(self)


class TransposedRows:
    """W.T of a QuantizedMatrix [D, V], used as the embedding table [V, D]: indexing by token
    ids dequantizes only those rows (columns of W). Holds no data of its own."""

    def __init__(self, base):
        self.base = base          # Model.nbytes counts the bytes once, through the base
        self.shape = base.shape[::-1]
        self.dtype = base.dtype

    @property
    def nbytes(self) -> int:
        return self.base.nbytes

    def __getitem__(self, ids):
        ids = np.asarray(ids)
        b = self.base
        cols = ids.reshape(-1)                                         # [N]
        if b.kind == "int4":
            q = unpack_int4(b.data[:, cols])                           # [D, N]
        else:
            q = b.data[:, cols]
        if b.kind == "int8":
            w = q.astype(np.float32) * b.scale[cols]                   # [D, N]
        else:
            w = dequantize_int8_groups(q, b.scale[:, cols])             # [D, N]
        return w.T.reshape(ids.shape + (b.shape[0],))                  # [..., D]


# -- a whole model -------------------------------------------------------------------

def is_matrix_weight(name):
    """The big matrices: attention and feed-forward projections, and the (un)embedding."""
    return name.split(".")[-1] in ("wqkv", "wo", "w_gate_up", "w_up", "w_down", "lm_head")


def quantize_model(model, kind):
    """-> a new Model whose matrices are QuantizedMatrix (norms, biases and learned positions
    stay float32). Shares the tokenizer and config with `model`; `model` is not changed."""
    if kind == "fp32":
        return model
    if kind not in KINDS:
        raise ValueError(f"unknown quantization {kind!r}: choose one of {', '.join(KINDS)}")
    if model.quantization != "fp32":
        raise ValueError(f"model is already {model.quantization}; quantize the fp32 model")
    w = model.weights
    out = {name: a for name, a in w.items() if name not in ("tok_emb", "lm_head")}
    for name in out:
        if is_matrix_weight(name):
            out[name] = QuantizedMatrix.from_float(out[name], kind)
    emb = QuantizedMatrix.from_float(np.asarray(w["tok_emb"]).T, kind)   # [V, D] -> [D, V]
    out["tok_emb"] = emb.T
    out["lm_head"] = emb if model.config.tied_embeddings else QuantizedMatrix.from_float(w["lm_head"], kind)
    return replace(model, weights=out, quantization=kind, info={**model.info, "quantized_from": "fp32"})


def matrix_nbytes(kind, n_in, n_out) -> int:
    """Bytes an [n_in, n_out] float32 matrix takes once quantized as `kind`: codes plus scales."""
    if kind == "fp32":
        return 4 * n_in * n_out
    codes = n_in * n_out // 2 if kind == "int4" else n_in * n_out
    scales = 4 * n_out if kind == "int8" else 4 * (n_in // GROUP) * n_out
    return codes + scales


def model_nbytes(model, kind) -> int:
    """Bytes of an fp32 model's weights in format `kind`, from shapes alone (nothing is
    quantized): what `quantize_model(model, kind).nbytes` will be. The page shows it per format."""
    if kind == "fp32":
        return model.nbytes
    D, V = model.weights["lm_head"].shape                                  # [D, V]
    total = matrix_nbytes(kind, D, V) * (1 if model.config.tied_embeddings else 2)   # (un)embedding
    for name, a in model.weights.items():
        if name in ("tok_emb", "lm_head"):
            continue
        total += matrix_nbytes(kind, *a.shape) if is_matrix_weight(name) else a.nbytes
    return total


# -- accuracy against the float32 model ----------------------------------------------

def log_softmax(logits):
    """[..., V] -> [..., V] float32 log-probabilities."""
    m = logits.max(axis=-1, keepdims=True)
    z = logits - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def compare_logits(ref_logits, logits, targets):
    """Next-token agreement of two models on the same text.

    ref_logits, logits [N, V]; targets [N] the true next tokens.
    -> sums: KL(ref || other) per position, top-1 agreement, negative log-likelihoods.
    """
    lp_ref, lp = log_softmax(ref_logits), log_softmax(logits)          # [N, V]
    kl = (np.exp(lp_ref) * (lp_ref - lp)).sum(axis=-1)                  # [N]
    rows = np.arange(len(targets))
    return {"kl": float(kl.sum()), "top1": int((ref_logits.argmax(-1) == logits.argmax(-1)).sum()),
            "nll_ref": float(-lp_ref[rows, targets].sum()), "nll": float(-lp[rows, targets].sum()),
            "n": len(targets)}


def evaluate(ref_model, models, ids, window=512):
    """Mean KL(ref || m), top-1 agreement and perplexity of each model over `ids`, scored in
    non-overlapping windows (each window starts with an empty cache).

    models: {label: Model}. -> {label: {...}, "ref": {"perplexity": ...}, "tokens": N}
    """
    ids = np.asarray(ids, np.int64)
    totals = {k: {"kl": 0.0, "top1": 0, "nll_ref": 0.0, "nll": 0.0, "n": 0} for k in models}
    for s in range(0, len(ids) - 1, window):
        chunk = ids[s: s + window + 1]
        if len(chunk) < 2:
            break
        ref = ref_model.logits(chunk[:-1])                               # [T, V]
        for label, m in models.items():
            part = compare_logits(ref, m.logits(chunk[:-1]), chunk[1:])
            for k in part:
                totals[label][k] += part[k]
    out = {}
    for label, t in totals.items():
        n = t["n"]
        out[label] = {"mean_kl": t["kl"] / n, "top1_agreement": t["top1"] / n,
                      "perplexity": float(np.exp(t["nll"] / n)), "tokens": n}
    any_t = next(iter(totals.values()))
    out["ref"] = {"perplexity": float(np.exp(any_t["nll_ref"] / any_t["n"])), "tokens": any_t["n"]}
    return out

