"""Fused dequantize-and-multiply kernels for quantized weights, compiled with numba.

A decode step multiplies one activation row (or a few, under batching) by every weight
matrix: each weight is read once from memory and used for one multiply-add, so the step is
bound by memory bandwidth. Reading 1 byte (int8) or half a byte (int4) per weight instead
of 4 is what makes quantized inference faster, but only if the weights are never expanded
to float32 in memory. These kernels read the packed codes and their scales, convert them to
float in registers, and accumulate the dot products directly (as llama.cpp's
ggml_vec_dot_q4_1_q8_1 and friends do with hand-written SIMD; here LLVM vectorizes plain
loops).

Layout (see llmviz/quant.py): a weight W used as `x @ W`, W [in, out], is stored as rows of
W.T, [out, in], so that output o is the dot product of x with one contiguous row; groups of
32 run along `in`. Every kernel computes, for rows r < N of x [N, in]:

    out[r, o] = sum_i x[r, i] * w[o, i]        out [N, out]

with w dequantized on the fly:

    int8      w = q * scale[o]                  q int8 [out, in]
    int8-g32  w = q * scale[o, g]               g = i // 32
    int4      w = q * scale[o, g] + min[o, g]   q in 0..15, two per byte (GGUF Q4_1 block layout:
                                                 byte j of a block holds element j in its low
                                                 nibble and element j + 16 in its high nibble)
    int4-sym  w = (q - 8) * scale[o, g]

How the loops are written, and why (measured on AMD EPYC Zen 4, AVX-512):
- Output rows are split over the cores (prange); each row of codes is read once for all N
  activation rows, which stay in cache.
- A group's scale multiplies the group's partial sum once (sum_j x_j q_j * d), not every
  weight, and an int4 minimum contributes min * sum_j x_j, with sum_j x_j computed once per
  call for all output rows.
- The group size is read from the array shapes, not written as the constant 32: a loop of
  known trip count 16 or 32 is fully unrolled before LLVM's loop vectorizer runs, and the
  unrolled code stayed scalar (3-4x slower).
- numba types integer arithmetic as int64, so nibbles are split with float arithmetic:
  for a byte c = lo + 16 hi, hi = floor(c / 16) exactly, and x_lo * lo + x_hi * hi =
  x_lo * c + (x_hi - 16 x_lo) * hi, so each byte costs one conversion, one floor and two
  multiply-adds; (x_hi - 16 x_lo) is computed once per call.
- No array slices inside the loops: each would build a new array object (reference counted)
  per group; indexing the parent arrays keeps the loop body to loads and arithmetic.
- Helpers called per group are inlined by numba (inline="always"): as a separate function,
  the call per group of 32 weights made int4 ten times slower.
- fastmath allows reassociating the sums (so that they vectorize) and fusing multiply-adds;
  it does not assume the absence of NaN or infinity.
- llama.cpp also quantizes the activation to int8 per block and accumulates integer dot
  products. Here that was slower: numba widens int8 x int8 products to int64 lanes unless
  every step is truncated back to int16/int32, and even then (vpmaddwd) the int8 path did not
  beat the float one at one row, where memory, not arithmetic, is the limit (docs/optimizations.md).

Compiled on first use and cached on disk (cache=True), so only the first process on a
machine pays for the compilation; `warm_up` compiles (or loads) them with a log line.
nogil=True lets other server threads run while a kernel computes.
"""
import threading
import time

import numba
import numpy as np
from numba import njit, prange

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}   # no "nnan"/"ninf": NaN and inf still propagate
JIT = {"cache": True, "nogil": True, "fastmath": FASTMATH}


@njit(parallel=True, **JIT)
def matmul_int8_rows(x, q, scale, out):
    """x [N, in] f32, q int8 [out, in], scale [out] -> out [N, out] (per output channel scale)."""
    n_out, n_in = q.shape
    for o in prange(n_out):
        for r in range(x.shape[0]):
            acc = np.float32(0.0)
            for i in range(n_in):
                acc += x[r, i] * np.float32(q[o, i])
            out[r, o] = acc * scale[o]


@njit(parallel=True, **JIT)
def matmul_int8_groups(x, q, scale, out):
    """x [N, in] f32, q int8 [out, in], scale [out, in/32] -> out [N, out]"""
    n_out, n_in = q.shape
    n_groups = scale.shape[1]
    size = n_in // n_groups
    for o in prange(n_out):
        for r in range(x.shape[0]):
            acc = np.float32(0.0)
            for g in range(n_groups):
                b = g * size
                s = np.float32(0.0)
                for j in range(size):
                    s += x[r, b + j] * np.float32(q[o, b + j])
                acc += s * scale[o, g]
            out[r, o] = acc


@njit(**JIT)
def split_activations(x, n_groups):
    """x [N, in] -> (x_lo [N, in/2], x_mix [N, in/2], x_sum [N, in/32]) in the byte order of the
    int4 codes: x_lo holds the elements stored in low nibbles, x_mix = x_hi - 16 x_lo, and
    x_sum the sum of each group of 32 (the factor of an int4 group's minimum)."""
    N, n_in = x.shape
    size = n_in // n_groups
    half = size // 2
    x_lo = np.empty((N, n_in // 2), np.float32)
    x_mix = np.empty((N, n_in // 2), np.float32)
    x_sum = np.zeros((N, n_groups), np.float32)
    for r in range(N):
        for g in range(n_groups):
            for j in range(half):
                lo = x[r, g * size + j]
                hi = x[r, g * size + half + j]
                x_lo[r, g * half + j] = lo
                x_mix[r, g * half + j] = hi - np.float32(16.0) * lo
                x_sum[r, g] += lo + hi
    return x_lo, x_mix, x_sum


@njit(inline="always", **JIT)         # inlined by numba: an LLVM call per group costs more than the group
def nibble_dot(x_lo, x_mix, codes, r, o, b, half):
    """sum over the 32 weights of one group of x * q (q the 4-bit codes of bytes b..b+half):
    byte c = lo + 16 hi, so x_lo * lo + x_hi * hi = x_lo * c + x_mix * floor(c / 16)."""
    s = np.float32(0.0)
    for j in range(half):
        c = np.float32(codes[o, b + j])
        s += x_lo[r, b + j] * c + x_mix[r, b + j] * np.floor(c * np.float32(0.0625))
    return s


@njit(parallel=True, **JIT)
def matmul_int4(x, codes, scale, minimum, out):
    """x [N, in] f32, codes uint8 [out, in/2], scale, minimum [out, in/32] -> out [N, out]
    with w = q * scale + minimum: sum over a group = scale * sum(x q) + minimum * sum(x)."""
    n_out, n_bytes = codes.shape
    n_groups = scale.shape[1]
    half = n_bytes // n_groups
    x_lo, x_mix, x_sum = split_activations(x, n_groups)
    for o in prange(n_out):
        for r in range(x.shape[0]):
            acc = np.float32(0.0)
            for g in range(n_groups):
                s = nibble_dot(x_lo, x_mix, codes, r, o, g * half, half)
                acc += s * scale[o, g] + minimum[o, g] * x_sum[r, g]
            out[r, o] = acc


@njit(parallel=True, **JIT)
def matmul_int4_sym(x, codes, scale, out):
    """x [N, in] f32, codes uint8 [out, in/2] (q + 8), scale [out, in/32] -> out [N, out]
    with w = (q - 8) * scale: sum over a group = scale * (sum(x q) - 8 sum(x))."""
    n_out, n_bytes = codes.shape
    n_groups = scale.shape[1]
    half = n_bytes // n_groups
    x_lo, x_mix, x_sum = split_activations(x, n_groups)
    for o in prange(n_out):
        for r in range(x.shape[0]):
            acc = np.float32(0.0)
            for g in range(n_groups):
                s = nibble_dot(x_lo, x_mix, codes, r, o, g * half, half)
                acc += scale[o, g] * (s - np.float32(8.0) * x_sum[r, g])
            out[r, o] = acc


# -- dequantizing a block of rows, for a prefill's gemm ------------------------------------

@njit(parallel=True, **JIT)
def dequantize_int8_groups(q, scale, lo, out):
    """Rows lo.. of int8-g32 weights into out [n, in] float32."""
    n, n_in = out.shape
    n_groups = scale.shape[1]
    size = n_in // n_groups
    for o in prange(n):
        for g in range(n_groups):
            d = scale[lo + o, g]
            for j in range(size):
                out[o, g * size + j] = np.float32(q[lo + o, g * size + j]) * d


@njit(inline="always", **JIT)
def unpack_group(codes, src, g, half, d, m, out, dst):
    """Group g of codes row src into out row dst: w = q * d + m."""
    for j in range(half):
        c = np.float32(codes[src, g * half + j])
        hi = np.floor(c * np.float32(0.0625))
        out[dst, 2 * g * half + j] = (c - np.float32(16.0) * hi) * d + m
        out[dst, 2 * g * half + half + j] = hi * d + m


@njit(parallel=True, **JIT)
def dequantize_int4(codes, scale, minimum, lo, out):
    """Rows lo.. of int4 weights into out [n, in] float32: w = q * scale + minimum."""
    n, n_in = out.shape
    n_groups = scale.shape[1]
    for o in prange(n):
        for g in range(n_groups):
            unpack_group(codes, lo + o, g, n_in // n_groups // 2, scale[lo + o, g], minimum[lo + o, g], out, o)


@njit(parallel=True, **JIT)
def dequantize_int4_sym(codes, scale, lo, out):
    """Rows lo.. of int4-sym weights into out [n, in] float32: w = (q - 8) * scale."""
    n, n_in = out.shape
    n_groups = scale.shape[1]
    for o in prange(n):
        for g in range(n_groups):
            d = scale[lo + o, g]
            unpack_group(codes, lo + o, g, n_in // n_groups // 2, d, np.float32(-8.0) * d, out, o)


KERNELS = {"int8": matmul_int8_rows, "int8-g32": matmul_int8_groups, "int4": matmul_int4,
           "int4-sym": matmul_int4_sym}

# numba's "workqueue" threading layer (the fallback when neither OpenMP nor TBB is found)
# aborts if two threads launch parallel kernels at once; the others allow it.
_serial_launch = threading.Lock()


def launch(kind, x, arrays, out):
    """Run the kernel of `kind` on x [N, in] (C-contiguous float32) into out [N, out]."""
    kernel = KERNELS[kind]
    if _layer() == "workqueue":
        with _serial_launch:
            kernel(x, *arrays, out)
    else:
        kernel(x, *arrays, out)
    return out


def _layer():
    try:
        return numba.threading_layer()
    except ValueError:            # no parallel kernel has run yet: be safe until one has
        return "workqueue"


_warm = set()
_warm_lock = threading.Lock()


def warm_up(kind, log=print, after=1.0):
    """Compile the kernels of `kind` (or load them from numba's on-disk cache) by running them
    on a tiny matrix. If that takes longer than `after` seconds (a first compile, once per machine),
    say so while it happens and how long it took. -> seconds spent (0 if already warm)."""
    with _warm_lock:
        if kind in _warm or kind not in KERNELS:
            return 0.0
        timer = threading.Timer(after, log, (f"llmviz: compiling the {kind} kernels with numba "
                                             "(once per machine, cached afterwards) ...",))
        timer.daemon = True
        t0 = time.perf_counter()
        timer.start()
        from .quant import QuantizedMatrix
        qm = QuantizedMatrix.from_float(np.ones((64, 2), np.float32), kind)
        launch(kind, np.ones((1, 64), np.float32), qm.arrays(), np.empty((1, 2), np.float32))
        qm.blocked_matmul(np.ones((1, 64), np.float32))           # a prefill's dequantizing kernel
        timer.cancel()
        seconds = time.perf_counter() - t0
        if seconds > after:
            log(f"llmviz: {kind} kernels ready in {seconds:.1f} s")
        _warm.add(kind)
        return seconds
