"""Batched generation: several prompts share every decode step's weight reads.

A decode step of one sequence is a row vector times each weight matrix (gemv): the
whole 0.5 GB of weights is read from memory to do 2 flops per weight, so the CPU mostly
waits for memory. With B sequences one read can serve B rows (a small gemm), so the
total tokens/s rises with B until compute, not memory, is the limit (Yu et al. 2022,
"Orca"; Kwon et al. 2023, "vLLM").

Layout: ragged rows with their own KV caches, not left padding. The textbook batched
forward pads shorter prompts on the left, masks the padding keys and offsets each row's
positions. Here every row owns a KVCache and forward() attends per row over exactly its
own keys at its own positions (rows at different lengths are fine), while the weight
matmuls see the whole batch: up to 4 rows one gemv per row (each re-reads the matrix; that
measured faster than OpenBLAS's gemm, which first packs the matrix), from 5 rows one
[B, D] @ [D, out] gemm that reads each matrix once (forward.linear). The fused int8/int4
kernels read each quantized matrix once for up to 16 rows (llmviz/kernels.py). The result is the same as
"padding + mask + per-row positions", without wasted compute on pad tokens and without
any pad key being attended to; it is also what continuous batching needs (llmviz/
scheduler.py): a row can join or leave between steps, which a padded rectangle cannot do
without re-padding. Prompts are prefilled one by one (their lengths differ), then decoded
together.

Each row keeps its own sampler and seed, so a row's output is the one it would have
produced alone.
"""
import time

import numpy as np

from .forward import StageClock, forward
from .generate import Generation, GenerationRequest


def step_together(gens):
    """One decode step for several Generations of one model: one forward pass with a row
    per generation (each must need exactly one new token). -> their Steps"""
    pending = [g.pending() for g in gens]                              # B x (ids, cache, rec)
    clock = StageClock()
    tokens = np.asarray([ids for ids, _, _ in pending])                # [B, 1]
    logits = forward(gens[0].model, tokens, [c for _, c, _ in pending],
                     recs=[r for _, _, r in pending], clock=clock)     # [B, 1, V]
    return [g.accept(logits[b, -1], clock.seconds, extra={"batch_size": len(gens)})
            for b, g in enumerate(gens)]


def batchable(gen) -> bool:
    """Past its prefill, with a KV cache and no speculative draft: needs one token per step."""
    return bool(gen.trace.steps) and gen.request.kv_cache and not gen.speculative


def generate_batch(model, prompts, max_new_tokens=32, temperature=0.0, top_k=None, top_p=None,
                   seed=None, trace=False, max_batch=None, **kwargs):
    """Generate for every prompt at once. -> one GenerationResult per prompt, in order.

    seed: one int (every row uses it, as if run alone with that seed), a list of ints, or None.
    Other keyword arguments are GenerationRequest fields (prompt_ids is not supported here; pass text).
    """
    prompts = list(prompts)
    seeds = list(seed) if isinstance(seed, (list, tuple)) else [seed] * len(prompts)
    t0 = time.perf_counter()
    gens = [Generation(model, GenerationRequest(prompt=p, max_new_tokens=max_new_tokens, temperature=temperature,
                                                top_k=top_k, top_p=top_p, seed=s, trace=trace, **kwargs))
            for p, s in zip(prompts, seeds)]
    finished_at = [None] * len(gens)
    max_batch = max_batch or len(gens)
    while True:
        live = [g for g in gens if not g.done]
        if not live:
            break
        for g in live:
            if not batchable(g):                                       # prefill (or no cache): alone
                next(g)
        ready = [g for g in live if not g.done and batchable(g)][:max_batch]
        if ready:
            step_together(ready)
        now = time.perf_counter() - t0
        for i, g in enumerate(gens):
            if g.done and finished_at[i] is None:
                finished_at[i] = now
    results = [g.result() for g in gens]
    for r, f in zip(results, finished_at):
        r.timings["batch_latency_ms"] = round((f or 0.0) * 1000, 3)
    return results
