"""Weight-only quantization written by hand: int8 and int4 with scales, multiplied by fused kernels.

Formats. W is a weight used as `x @ W`, shape [in, out]. It is stored as rows of W.T, [out, in]:
output o is the dot product of x with one contiguous row, and "groups" run along `in`, the
dimension a dot product sums over, so one scale covers 32 consecutive terms of one sum.

    int8      q int8 [out, in], scale [out] per output channel    (LLM.int8's vector-wise
              quantization without the outlier part, Dettmers et al. 2022)
    int8-g32  q int8 [out, in], scale [out, in/32]                 (GGUF Q8_0's blocks)
    int4      q in 0..15 packed two per byte [out, in/2], scale and minimum [out, in/32]:
              w = q * scale + minimum                                (GGUF Q4_1, asymmetric)
    int4-sym  q in -8..7 (stored + 8) packed the same way, scale [out, in/32]:
              w = q * scale                                   (symmetric, like GGUF Q4_0)

Scales and minimums are float32 (GGUF stores float16: 5.0 bits per weight for Q4_1 where
ours is 6.0; numba has no float16 on the CPU). Every format rounds to the nearest code, so
|w - w'| <= scale / 2 for every weight: int8 and int4-sym use absmax (scale = max|w| / 127
or / 7), int4 uses the group's range (scale = (max - min) / 15, minimum = min).

The int4 codes of a group of 32 use GGUF's block layout: byte j holds element j in its
low nibble and element j + 16 in its high nibble (ggml's quantize_row_q4_1).

`QuantizedMatrix` stands in for the float32 array in `model.weights`, so forward() runs
unchanged: `x @ qm` sends up to FUSED_MAX_ROWS rows (decode, small batches) to a fused
dequantize-and-multiply kernel (llmviz/kernels.py) that reads the packed bytes once and
never writes a float32 copy of the weights; more rows (a prefill, a large batch) dequantize
a block of weights at a time into float32 and multiply with BLAS, which is faster there
because each dequantized weight then serves many rows.

The token embedding of a tied model is the unembedding's transpose: it is stored once,
quantized, and looked up by dequantizing only the rows of the tokens asked for.
"""
from dataclasses import dataclass, replace

import numpy as np

GROUP = 32
# Up to this many rows of x, the fused kernel; more, dequantize + BLAS gemm. The fused kernels
# unpack the codes again for every row, and int4 / int8-g32 unpacking costs more than a gemm
# beyond about 8 rows (measured on the default model, docs/optimizations.md).
FUSED_MAX_ROWS = {"int8": 16, "int8-g32": 8, "int4": 8, "int4-sym": 8}
BLOCK_ELEMS = 1 << 22          # a prefill dequantizes at most this many weights at once (16 MB of float32)


@dataclass(frozen=True)
class Format:
    name: str
    label: str                 # short, for the page's menu
    storage: str               # how one weight is stored


FORMATS = {f.name: f for f in (
    Format("fp32", "float32", "4 bytes per weight"),
    Format("int8", "int8, a scale per output channel", "1 byte + a float32 scale per output channel"),
    Format("int8-g32", "int8, a scale per 32 weights", "1 byte + a float32 scale per 32 weights"),
    Format("int4", "int4, scale and minimum per 32 weights", "half a byte + a float32 scale and "
           "minimum per 32 weights (GGUF Q4_1)"),
    Format("int4-sym", "int4 symmetric, a scale per 32 weights", "half a byte + a float32 scale per "
           "32 weights (symmetric, like GGUF Q4_0)"),
)}
KINDS = ("fp32", "int8", "int8-g32", "int4")    # what the app offers; int4-sym is for the bench and docs
LABELS = {name: f.label for name, f in FORMATS.items()}


# -- the number formats: each acts on rows [out, in], groups along the last axis ------

def groups(rows):
    """[out, in] -> [out, in/32, 32]"""
    n_out, n_in = rows.shape
    if n_in % GROUP:
        raise ValueError(f"input dimension {n_in} is not a multiple of the group size {GROUP}")
    return rows.reshape(n_out, n_in // GROUP, GROUP)


def safe_scale(s):
    """A scale of 0 (an all-zero channel or group) becomes 1: its codes are all 0 anyway."""
    return np.where(s == 0, 1.0, s).astype(np.float32)


def quantize_int8_rows(rows):
    """[out, in] float32 -> (q int8 [out, in], scale float32 [out])"""
    scale = safe_scale(np.abs(rows).max(axis=1) * (1.0 / 127.0))          # [out]
    q = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8_rows(q, scale):
    """[out, in] int8, [out] -> [out, in] float32"""
    return q.astype(np.float32) * scale[:, None]


def quantize_int8_groups(rows):
    """[out, in] float32 -> (q int8 [out, in], scale [out, in/32])"""
    g = groups(rows)
    scale = safe_scale(np.abs(g).max(axis=2) * (1.0 / 127.0))             # [out, in/32]
    q = np.clip(np.rint(g / scale[..., None]), -127, 127).astype(np.int8)
    return q.reshape(rows.shape), scale


def dequantize_int8_groups(q, scale):
    """[out, in] int8, [out, in/32] -> [out, in] float32"""
    return (groups(q).astype(np.float32) * scale[..., None]).reshape(q.shape)


def pack_int4(u):
    """[out, in] uint8 in 0..15 -> [out, in/2] uint8 in GGUF's block order: byte j of a
    group holds element j (low nibble) and element j + 16 (high nibble)."""
    g = groups(u).reshape(u.shape[0], -1, 2, GROUP // 2)                   # [out, in/32, 2, 16]
    return (g[:, :, 0] | (g[:, :, 1] << 4)).reshape(u.shape[0], -1)


def unpack_int4(packed):
    """[out, in/2] uint8 -> [out, in] uint8 in 0..15"""
    n_out = packed.shape[0]
    b = packed.reshape(n_out, -1, GROUP // 2)                              # [out, in/32, 16]
    return np.stack([b & 0x0F, b >> 4], axis=2).reshape(n_out, -1)


def quantize_int4(rows):
    """[out, in] float32 -> (packed uint8 [out, in/2], scale [out, in/32], minimum [out, in/32]).

    Each group of 32 spans its own range: minimum = min(w), scale = (max(w) - min(w)) / 15,
    q = round((w - minimum) / scale) in 0..15."""
    g = groups(rows)
    lo = g.min(axis=2)                                                     # [out, in/32]
    scale = safe_scale((g.max(axis=2) - lo) * (1.0 / 15.0))
    q = np.clip(np.rint((g - lo[..., None]) / scale[..., None]), 0, 15).astype(np.uint8)
    return pack_int4(q.reshape(rows.shape)), scale, lo.astype(np.float32)


def dequantize_int4(packed, scale, minimum):
    """[out, in/2] uint8, [out, in/32] x 2 -> [out, in] float32"""
    q = groups(unpack_int4(packed)).astype(np.float32)                     # [out, in/32, 32]
    return (q * scale[..., None] + minimum[..., None]).reshape(q.shape[0], -1)


def quantize_int4_sym(rows):
    """[out, in] float32 -> (packed uint8 [out, in/2], scale [out, in/32]).

    scale = absmax / 7, so q = round(w / scale) lies in -7..7 (the code -8 is unused, keeping
    the grid symmetric and the error bound scale / 2); stored as q + 8."""
    g = groups(rows)
    scale = safe_scale(np.abs(g).max(axis=2) * (1.0 / 7.0))
    q = np.clip(np.rint(g / scale[..., None]), -8, 7).astype(np.int8) + 8
    return pack_int4(q.astype(np.uint8).reshape(rows.shape)), scale


def dequantize_int4_sym(packed, scale):
    """[out, in/2] uint8, [out, in/32] -> [out, in] float32"""
    q = groups(unpack_int4(packed)).astype(np.float32) - 8.0
    return (q * scale[..., None]).reshape(q.shape[0], -1)


QUANTIZE = {"int8": quantize_int8_rows, "int8-g32": quantize_int8_groups, "int4": quantize_int4,
            "int4-sym": quantize_int4_sym}
DEQUANTIZE = {"int8": dequantize_int8_rows, "int8-g32": dequantize_int8_groups, "int4": dequantize_int4,
              "int4-sym": dequantize_int4_sym}


# -- a matrix that forward() can multiply by ---------------------------------------

class QuantizedMatrix:
    """A quantized [in, out] weight that behaves like the float32 array in `x @ W`."""

    __array_ufunc__ = None        # make NumPy hand `x @ qm` to __rmatmul__

    def __init__(self, kind, codes, scale, minimum, shape):
        self.kind = kind          # "int8" | "int8-g32" | "int4" | "int4-sym"
        self.codes = codes        # int8 [out, in] or packed uint8 [out, in/2]
        self.scale = scale        # float32 [out] or [out, in/32]
        self.minimum = minimum    # float32 [out, in/32] (int4) or None
        self.shape = tuple(shape)  # (in, out) of the float32 matrix it stands for
        self.dtype = np.dtype(np.float32)

    @classmethod
    def from_float(cls, w, kind):
        """w [in, out] float32 -> its quantized rows [out, in]"""
        w = np.asarray(w, np.float32)
        codes, scale, *minimum = QUANTIZE[kind](np.ascontiguousarray(w.T))   # int4 also returns a minimum
        return cls(kind, codes, scale, minimum[0] if minimum else None, w.shape)

    def arrays(self):
        """The stored arrays, in the order the kernel takes them."""
        return (self.codes, self.scale) + (() if self.minimum is None else (self.minimum,))

    @property
    def nbytes(self) -> int:
        """Bytes as stored: the integer codes plus the float32 scales (and minimums)."""
        return sum(a.nbytes for a in self.arrays())

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / (self.shape[0] * self.shape[1])

    def dequantize_rows(self, index):
        """Float32 rows of W.T at `index` (a slice or integer array of output channels). -> [n, in]"""
        return DEQUANTIZE[self.kind](*(a[index] for a in self.arrays()))

    def dequantize(self):
        """The float32 [in, out] matrix these codes stand for (a transposed view of the rows)."""
        return self.dequantize_rows(slice(None)).T

    def __rmatmul__(self, x):
        """x [..., in] @ W -> [..., out]"""
        from . import kernels
        n_in, n_out = self.shape
        x = np.asarray(x, np.float32)
        rows = np.ascontiguousarray(x.reshape(-1, n_in))                   # [N, in]
        if rows.shape[0] <= FUSED_MAX_ROWS[self.kind]:
            out = kernels.launch(self.kind, rows, self.arrays(), np.empty((rows.shape[0], n_out), np.float32))
        else:
            out = self.blocked_matmul(rows)
        return out.reshape(x.shape[:-1] + (n_out,))

    def blocked_matmul(self, rows):
        """[N, in] @ W for many rows: dequantize at most BLOCK_ELEMS weights (a block of output
        channels) at a time and multiply with BLAS. -> [N, out]"""
        n_in, n_out = self.shape
        step = max(1, BLOCK_ELEMS // n_in)
        out = np.empty((rows.shape[0], n_out), np.float32)
        for lo in range(0, n_out, step):
            hi = min(n_out, lo + step)
            if self.kind == "int8":       # a per-channel scale factors out of the sum: apply it after
                out[:, lo:hi] = (rows @ self.codes[lo:hi].astype(np.float32).T) * self.scale[lo:hi]
            else:
                out[:, lo:hi] = rows @ self.dequantize_block(lo, hi).T   # [N, in] @ [in, hi-lo]
        return out

    def dequantize_block(self, lo, hi):
        """Rows lo:hi of W.T in float32, by a compiled loop (NumPy's unpacking takes several
        passes over the block). -> [hi-lo, in]"""
        from . import kernels
        out = np.empty((hi - lo, self.shape[0]), np.float32)
        dequantize = {"int8-g32": kernels.dequantize_int8_groups, "int4": kernels.dequantize_int4,
                      "int4-sym": kernels.dequantize_int4_sym}[self.kind]
        dequantize(*self.arrays(), lo, out)
        return out

    @property
    def T(self):
        return TransposedRows(self)


class TransposedRows:
    """W.T of a QuantizedMatrix [D, V], used as the embedding table [V, D]: indexing by token
    ids dequantizes only those rows (stored rows of W.T). Holds no data of its own."""

    def __init__(self, base):
        self.base = base          # Model.nbytes counts the bytes once, through the base
        self.shape = base.shape[::-1]
        self.dtype = base.dtype

    @property
    def nbytes(self) -> int:
        return self.base.nbytes

    def __getitem__(self, ids):
        ids = np.asarray(ids)
        rows = self.base.dequantize_rows(ids.reshape(-1))                  # [N, D]
        return rows.reshape(ids.shape + (self.shape[1],))                  # [..., D]


# -- a whole model -------------------------------------------------------------------

def is_matrix_weight(name):
    """The big matrices: attention and feed-forward projections, and the (un)embedding."""
    return name.split(".")[-1] in ("wqkv", "wo", "w_gate_up", "w_up", "w_down", "lm_head")


def quantize_model(model, kind, log=print):
    """-> a new Model whose matrices are QuantizedMatrix (norms, biases and learned positions
    stay float32). Shares the tokenizer and config with `model`; `model` is not changed.
    Compiles the fused kernel of `kind` (first use on this machine) or loads it from the cache."""
    if kind == "fp32":
        return model
    if kind not in FORMATS:
        raise ValueError(f"unknown quantization {kind!r}: choose one of {', '.join(FORMATS)}")
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
    from .kernels import warm_up
    warm_up(kind, log)
    return replace(model, weights=out, quantization=kind, info={**model.info, "quantized_from": "fp32"})


def dequantize_model(model):
    """A quantized model's weights expanded back to float32 arrays: the same numbers, multiplied
    by NumPy/BLAS instead of the fused kernels (the reference the kernels are tested against)."""
    w = {name: a.dequantize() if isinstance(a, QuantizedMatrix) else a for name, a in model.weights.items()
         if name != "tok_emb"}
    w["tok_emb"] = (w["lm_head"].T if model.config.tied_embeddings
                    else model.weights["tok_emb"].base.dequantize().T)
    return replace(model, weights=w, quantization="fp32",
                   info={**model.info, "dequantized_from": model.quantization})


def matrix_nbytes(kind, n_in, n_out) -> int:
    """Bytes an [n_in, n_out] float32 matrix takes once quantized as `kind`: codes plus scales."""
    if kind == "fp32":
        return 4 * n_in * n_out
    codes = n_in * n_out // 2 if kind.startswith("int4") else n_in * n_out
    per_group = {"int8-g32": 4, "int4": 8, "int4-sym": 4}.get(kind)          # float32 scale (+ minimum)
    scales = 4 * n_out if kind == "int8" else per_group * (n_in // GROUP) * n_out
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

