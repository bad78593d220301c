"""Choosing the next token from the logits: greedy, temperature, top-k, top-p.

Order as in Hugging Face's generate(): temperature, then top-k, then top-p
(Holtzman et al. 2020). The random draw is one uniform number u in [0, 1). The
tokens are laid end to end in descending probability (ties: lower token id first),
each covering an interval [start, end) of [0, 1) as wide as its probability; the
chosen token is the one whose interval contains u. That is the order the page draws
the cumulative bar in, so a recorded (seed, u) explains every choice at a glance.
(Before this order was introduced the walk went by token id; seeded runs from then
may sample differently.)
"""
from dataclasses import dataclass

import numpy as np

from .ops import softmax


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.0     # 0 means greedy (argmax)
    top_k: int | None = None     # keep the k most likely tokens
    top_p: float | None = None   # keep the smallest set whose probability reaches p

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def tempered(logits, temperature: float) -> np.ndarray:
    """softmax(logits / temperature), safe for any temperature > 0: dividing the gaps
    to the maximum (all <= 0) can underflow to 0 but never turns into NaN."""
    z = np.asarray(logits, np.float64)
    with np.errstate(over="ignore"):                               # gaps / tiny t -> -inf -> p = 0
        return softmax(((z - z.max()) / float(temperature)).astype(np.float32))


def top_k_mask(probs, k: int) -> np.ndarray:
    """[V] -> bool [V]: the k most likely tokens, ties at the k-th value going to lower ids (the
    first k of the draw order). O(V) with a partition, not a sort of the whole vocabulary."""
    t = np.partition(probs, probs.size - k)[probs.size - k]             # the k-th largest value
    keep = probs > t
    keep[np.flatnonzero(probs == t)[: k - int(keep.sum())]] = True      # equal values: lower ids first
    return keep


def filtered_distribution(logits, s: SamplingSettings) -> np.ndarray:
    """[V] logits -> [V] probabilities after temperature, top-k and top-p (zeros outside the kept set)."""
    if s.greedy:
        p = np.zeros(logits.shape, np.float32)
        p[int(np.argmax(logits))] = 1.0
        return p
    probs = tempered(logits, s.temperature)
    keep = np.ones(probs.shape, bool)
    if s.top_k is not None and s.top_k < probs.size:
        keep = top_k_mask(probs, s.top_k)
    if s.top_p is not None and s.top_p < 1.0:
        ids = np.flatnonzero(keep)                                         # [K], ascending ids
        order = ids[np.argsort(-probs[ids], kind="stable")]                # draw order of the kept tokens
        cum = np.cumsum(probs[order])
        n_keep = int(np.searchsorted(cum, s.top_p * cum[-1])) + 1   # smallest prefix reaching top_p
        keep[order[n_keep:]] = False
    p = np.where(keep, probs, 0.0)
    return (p / p.sum()).astype(np.float32)


def draw_intervals(probs):
    """The walk of a draw over a distribution [V]: the token ids with p > 0 in descending
    probability (ties: lower id first) -> (ids [K], starts [K], ends [K]), the cumulative
    interval [start, end) of each as a fraction of the total (float64; the last end is 1)."""
    ids = np.flatnonzero(probs)                                        # [K]
    ids = ids[np.argsort(-probs[ids], kind="stable")]                  # stable: equal p keep id order
    cum = np.cumsum(probs[ids], dtype=np.float64)                      # [K]
    ends = cum / cum[-1]
    return ids, np.concatenate([[0.0], ends[:-1]]), ends


def draw(probs, u: float) -> int:
    """The token whose interval (see draw_intervals) contains u, 0 <= u < 1."""
    ids, _, ends = draw_intervals(probs)
    return int(ids[min(np.searchsorted(ends, u, side="right"), ids.size - 1)])


def sample(logits, s: SamplingSettings, rng):
    """-> (token id, explanation dict for the trace)"""
    logits = np.asarray(logits, np.float32)
    probs = filtered_distribution(logits, s)
    if s.greedy:
        u, token = None, int(np.argmax(logits))
    else:
        u = float(rng.random())
        token = draw(probs, u)
    return token, {"probs": probs, "u": u}
