"""The generation loop: prefill the prompt, then one token per step.

`Generation` is an iterator of Steps, so a server can stream each step as it is
computed and stop early by simply not asking for the next one. `generate()` runs
it to the end. Per-run state (KV cache, RNG, trace) lives here, never on the model.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from .forward import KVCache, StageClock, forward
from .sampling import SamplingSettings, sample
from .trace import Recorder, Step, Trace


@dataclass
class GenerationResult:
    prompt_ids: list
    token_ids: list            # the new tokens
    text: str                  # their decoded text
    timings: dict
    trace: Trace | None = None
    stats: dict = field(default_factory=dict)   # e.g. speculative-decoding acceptance


class Generation:
    def __init__(self, model, prompt, max_new_tokens=32, temperature=0.0, top_k=None, top_p=None,
                 seed=None, trace=False, kv_cache=True, forced_ids=(), prompt_ids=None, stop_at_eos=True):
        t0 = time.perf_counter()
        self.model = model
        self.prompt_ids = list(prompt_ids) if prompt_ids is not None else model.tokenizer.encode(prompt)
        tokenize_s = time.perf_counter() - t0
        if not self.prompt_ids:
            raise ValueError("the prompt is empty: there is no token to start from")
        total = len(self.prompt_ids) + max_new_tokens
        if total > model.config.context_length:
            raise ValueError(f"prompt ({len(self.prompt_ids)} tokens) + max_new_tokens ({max_new_tokens}) "
                             f"exceeds the model's context length of {model.config.context_length} tokens")
        self.max_new_tokens = max_new_tokens
        self.sampling = SamplingSettings(float(temperature), top_k, top_p)
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2 ** 31))
        self.rng = np.random.default_rng(self.seed)
        self.tracing = trace
        self.kv_cache = kv_cache
        self.forced = list(forced_ids)
        self.stop_at_eos = stop_at_eos
        self.cache = KVCache(model.config, total)
        self.new_ids = []
        settings = {"max_new_tokens": max_new_tokens, "temperature": float(temperature), "top_k": top_k,
                    "top_p": top_p, "seed": self.seed, "kv_cache": kv_cache, "quantization": model.quantization,
                    "forced_ids": self.forced}
        self.trace = Trace(model, settings, self.prompt_ids)
        self.trace.timings["tokenize_ms"] = round(tokenize_s * 1000, 3)
        self.done = max_new_tokens < 1

    # A step is split in two so that a scheduler can run the forward passes of many
    # Generations as one batch: pending() says what to compute, accept() takes the logits.
    def pending(self):
        """-> (input ids, cache, recorder or None) for this step's forward pass."""
        if not self.kv_cache:                      # recompute every K/V row from scratch
            self.cache.length = 0
        ids = self.prompt_ids + self.new_ids
        self._rec = Recorder() if self.tracing else None
        self._start = self.cache.length
        return ids[self._start:], self.cache, self._rec

    def accept(self, logits, seconds, extra=None) -> Step:
        """logits [V] of the last input position -> the Step (sampling done here)."""
        t1 = time.perf_counter()
        token, info = sample(logits, self.sampling, self.rng)
        if len(self.new_ids) < len(self.forced):
            token = int(self.forced[len(self.new_ids)])
        seconds = {**seconds, "sampling": time.perf_counter() - t1}
        seconds["total"] = sum(seconds.values())
        s = self.sampling
        inputs = (self.prompt_ids + self.new_ids)[self._start:]
        step = Step(index=len(self.trace.steps), kind="prefill" if not self.trace.steps else "decode",
                    input_ids=inputs, start=self._start, reused_rows=self._start,
                    cache_bytes=self.cache.nbytes_used if self.kv_cache else 0, logits=logits,
                    sampling={"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p,
                              "u": info["u"], "probs": info["probs"], "chosen": token},
                    emitted=[token], seconds=seconds, rec=self._rec.data if self._rec else {},
                    extra=extra or {})
        self.new_ids.append(token)
        self.trace.steps.append(step)
        if len(self.new_ids) >= self.max_new_tokens or (
                self.stop_at_eos and token in self.model.tokenizer.eos_ids):
            self.done = True
        return step

    def __iter__(self):
        return self

    def __next__(self) -> Step:
        if self.done:
            raise StopIteration
        inputs, cache, rec = self.pending()
        clock = StageClock()
        logits = forward(self.model, np.asarray([inputs]), [cache], recs=[rec], clock=clock)
        return self.accept(logits[0, -1], clock.seconds)

    def result(self) -> GenerationResult:
        for _ in self:
            pass
        steps = self.trace.steps
        per_token = [s.seconds["total"] for s in steps]
        decode = per_token[1:]
        timings = {
            **self.trace.timings,
            "prefill_ms": round(per_token[0] * 1000, 3) if per_token else 0.0,
            "per_token_ms": [round(t * 1000, 3) for t in per_token],
            "decode_tokens_per_second": round(len(decode) / sum(decode), 2) if decode else None,
            "total_ms": round(sum(per_token) * 1000 + self.trace.timings["tokenize_ms"], 3),
            "stage_ms": {k: round(sum(s.seconds.get(k, 0.0) for s in steps) * 1000, 3)
                         for k in ("embed", "attention", "feedforward", "prediction", "sampling")},
        }
        self.trace.timings = timings
        tok = self.model.tokenizer
        text_ids = [i for i in self.new_ids if not (i in tok.eos_ids and i == self.new_ids[-1])]
        return GenerationResult(self.prompt_ids, list(self.new_ids), tok.decode(text_ids), timings,
                                self.trace if self.tracing else None)


def generate(model, prompt, max_new_tokens=32, temperature=0.0, top_k=None, top_p=None, seed=None,
             trace=False, kv_cache=True, **kwargs) -> GenerationResult:
    return Generation(model, prompt, max_new_tokens, temperature, top_k, top_p, seed, trace, kv_cache,
                      **kwargs).result()
