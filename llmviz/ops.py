"""The transformer's operations as small pure NumPy functions, float32 in, float32 out.

Scalars are Python floats on purpose: in NumPy 2 a float64 *array* scalar would
promote a whole activation (and every later matmul) to float64.
Shape legend: see llmviz/config.py.
"""
import math

import numpy as np


def rms_norm(x, w, eps):
    """Zhang & Sennrich 2019. [..., D] -> [..., D]"""
    ms = (x * x).sum(axis=-1, keepdims=True) * (1.0 / x.shape[-1])   # mean square (cheaper than np.mean)
    return x * (1.0 / np.sqrt(ms + eps)) * w


def layer_norm(x, w, b, eps):
    """Ba et al. 2016. [..., D] -> [..., D]"""
    mu = np.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = np.mean(xc * xc, axis=-1, keepdims=True)
    return xc * (1.0 / np.sqrt(var + eps)) * w + b


def gelu_tanh(x):
    """GPT-2's GELU (tanh approximation, Hendrycks & Gimpel 2016)."""
    c = math.sqrt(2.0 / math.pi)
    return 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x * x * x)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def swiglu(gate, up):
    """Shazeer 2020: SiLU(gate) * up. [..., F], [..., F] -> [..., F]"""
    return silu(gate) * up


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def rope_angles(positions, d, theta):
    """Rotary angles (Su et al. 2021). [T] -> [T, d/2]: angle of each frequency pair at each position."""
    inv_freq = 1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float64) / d))  # [d/2]
    return (np.asarray(positions, np.float64)[:, None] * inv_freq[None, :]).astype(np.float32)


def rope_tables(angles):
    """[..., T, d/2] angles -> cos, sin tables [..., T, 2, d/2] shaped for apply_rope."""
    cos, sin = np.cos(angles), np.sin(angles)
    return np.stack([cos, cos], axis=-2), np.stack([-sin, sin], axis=-2)


def apply_rope(x, cos2, sin2):
    """Rotate pairs (i, i + d/2), Hugging Face's 'rotate_half' layout:
    (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin).

    x [..., T, d], cos2/sin2 [T, 2, d/2] from rope_tables() (or any shape that broadcasts
    against [..., T, 2, d/2], e.g. [B, 1, T, 2, d/2] for B sequences) -> [..., T, d]
    """
    *lead, T, d = x.shape
    halves = x.reshape(*lead, T, 2, d // 2)                       # [..., T, 2, d/2]: (x1, x2)
    out = halves * cos2 + halves[..., ::-1, :] * sin2             # (x2, x1) is a reversed view
    return out.reshape(x.shape)


def attention(q, k, v, mask):
    """Scaled dot-product attention with grouped-query heads.

    q [H, T, d], k/v [Hkv, S, d], mask [T, S] bool (True = may attend) or None
    -> out [H, T, d], probs [H, T, S]
    """
    H, T, d = q.shape
    Hkv = k.shape[0]
    qg = q.reshape(Hkv, H // Hkv, T, d)                            # [Hkv, g, T, d]
    scores = (qg @ k[:, None].swapaxes(-1, -2)) * (1.0 / math.sqrt(d))  # [Hkv, g, T, S]
    if mask is not None:                                           # None: every key is visible
        scores = np.where(mask, scores, np.float32(-np.inf))
    probs = softmax(scores)                                        # [Hkv, g, T, S]
    out = probs @ v[:, None]                                       # [Hkv, g, T, d]
    return out.reshape(H, T, d), probs.reshape(H, T, -1)
