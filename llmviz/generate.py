"""The generation loop: prefill the prompt, then one token per step.

`Generation` is an iterator of Steps, so a server can stream each step as it is
computed and stop early by simply not asking for the next one. `generate()` runs
it to the end. Per-run state (KV cache, RNG, trace) lives here, never on the model.

With `speculative` set, every step after the prefill is a speculative step (see
llmviz/speculative.py): a draft proposes up to `num_draft_tokens` tokens, one forward
pass verifies them all, and the step emits one or more tokens.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from .forward import KVCache, StageClock, forward
from .sampling import SamplingSettings, filtered_distribution, sample
from .speculative import SpecStats, make_drafter, verify
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
                 seed=None, trace=False, kv_cache=True, forced_ids=(), prompt_ids=None, stop_at_eos=True,
                 speculative=None, num_draft_tokens=4, early_exit_layers=None):
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
        self.drafter = None
        if speculative is not None:
            if not kv_cache or self.forced:
                raise ValueError("speculative decoding needs kv_cache=True and no forced tokens")
            if int(num_draft_tokens) < 1:
                raise ValueError("num_draft_tokens must be at least 1")
            self.num_draft_tokens = int(num_draft_tokens)
            self.drafter = make_drafter(speculative, self, early_exit_layers)
            self.spec_stats = SpecStats(self.drafter.name, self.num_draft_tokens)
            settings.update(speculative=self.drafter.name, num_draft_tokens=self.num_draft_tokens)
            if getattr(self.drafter, "n_layers", None):
                settings["early_exit_layers"] = self.drafter.n_layers

    @property
    def speculative(self) -> bool:
        """True when the next step is a speculative one (it cannot join a batched forward)."""
        return self.drafter is not None and bool(self.trace.steps)

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
        inputs = (self.prompt_ids + self.new_ids)[self._start:]
        step = Step(index=len(self.trace.steps), kind="prefill" if not self.trace.steps else "decode",
                    input_ids=inputs, start=self._start, reused_rows=self._start,
                    cache_bytes=self.cache.nbytes_used if self.kv_cache else 0, logits=logits,
                    sampling=self.sampling_record(info["u"], info["probs"], token),
                    emitted=[token], seconds=seconds, rec=self._rec.data if self._rec else {},
                    extra=extra or {})
        return self.append(step, stop=self.stop_at_eos and token in self.model.tokenizer.eos_ids)

    def sampling_record(self, u, probs, token) -> dict:
        """What the trace keeps of one sampling decision: settings, the draw, the distribution."""
        s = self.sampling
        return {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p,
                "u": u, "probs": probs, "chosen": token}

    def append(self, step, stop=False) -> Step:
        """Add a finished step's tokens to the run; `stop` ends it (an end-of-turn token)."""
        self.new_ids.extend(step.emitted)
        self.trace.steps.append(step)
        if stop or len(self.new_ids) >= self.max_new_tokens:
            self.done = True
        return step

    def __iter__(self):
        return self

    def __next__(self) -> Step:
        if self.done:
            raise StopIteration
        if self.speculative:
            return self.speculative_step()
        inputs, cache, rec = self.pending()
        clock = StageClock()
        logits = forward(self.model, np.asarray([inputs]), [cache], recs=[rec], clock=clock)
        return self.accept(logits[0, -1], clock.seconds)

    def speculative_step(self) -> Step:
        """Draft up to γ tokens, score them with the target in one forward pass, keep the
        accepted prefix plus one token from the target (Leviathan et al. 2023)."""
        t0 = time.perf_counter()
        ids = self.prompt_ids + self.new_ids
        start = self.cache.length                  # == len(ids) - 1: the last token is not cached yet
        gamma = min(self.num_draft_tokens, self.max_new_tokens - len(self.new_ids) - 1)
        drafts, q = self.drafter.propose(self, ids, gamma) if gamma > 0 else ([], None)
        self.cache.length = start
        t1 = time.perf_counter()

        inputs = [ids[-1]] + list(drafts)
        rec = Recorder() if self.tracing else None
        clock = StageClock()
        logits = forward(self.model, np.asarray([inputs]), [self.cache], recs=[rec], clock=clock,
                         all_logits=True)[0]                                     # [γ+1, V]
        t2 = time.perf_counter()
        p = np.stack([filtered_distribution(row, self.sampling) for row in logits])  # [γ+1, V]
        n_acc, token, decisions, final = verify(p, q, drafts, self.sampling.greedy, self.rng)
        self.cache.length = start + 1 + n_acc      # drop the K/V rows of rejected draft tokens
        self.drafter.rollback(self.cache.length)

        emitted = list(drafts[:n_acc]) + [token]
        emitted = emitted[: self.max_new_tokens - len(self.new_ids)]
        eos = [i for i, t in enumerate(emitted) if self.stop_at_eos and t in self.model.tokenizer.eos_ids]
        if eos:
            emitted = emitted[: eos[0] + 1]
        self.spec_stats.add(len(drafts), n_acc, len(emitted))
        seconds = {**clock.seconds, "draft": t1 - t0, "sampling": time.perf_counter() - t2}
        seconds["total"] = sum(seconds.values())
        step = Step(index=len(self.trace.steps), kind="decode", input_ids=inputs, start=start,
                    reused_rows=start, cache_bytes=self.cache.nbytes_used, logits=logits[n_acc],
                    sampling=self.sampling_record(final["u"], final["probs"], token),
                    emitted=emitted, seconds=seconds, rec=rec.data if rec else {},
                    extra={"speculative": {"source": self.drafter.name, "draft_tokens": [int(t) for t in drafts],
                                           "accepted": n_acc, "decisions": decisions,
                                           "final_token": int(token), "final_kind": final["kind"],
                                           "discarded_rows": len(drafts) - n_acc}})
        return self.append(step, stop=bool(eos))

    def stats(self) -> dict:
        return self.spec_stats.summary() if self.drafter is not None else {}

    def result(self) -> GenerationResult:
        for _ in self:
            pass
        steps = self.trace.steps
        per_token = [s.seconds["total"] for s in steps]
        decode = per_token[1:]
        decode_tokens = sum(len(s.emitted) for s in steps[1:])
        timings = {
            **self.trace.timings,
            "prefill_ms": round(per_token[0] * 1000, 3) if per_token else 0.0,
            "per_token_ms": [round(t * 1000, 3) for t in per_token],
            "decode_tokens_per_second": round(decode_tokens / sum(decode), 2) if decode else None,
            "total_ms": round(sum(per_token) * 1000 + self.trace.timings["tokenize_ms"], 3),
            "stage_ms": {k: round(sum(s.seconds.get(k, 0.0) for s in steps) * 1000, 3)
                         for k in ("embed", "attention", "feedforward", "prediction", "sampling", "draft")},
        }
        self.trace.timings = timings
        tok = self.model.tokenizer
        text_ids = [i for i in self.new_ids if not (i in tok.eos_ids and i == self.new_ids[-1])]
        return GenerationResult(self.prompt_ids, list(self.new_ids), tok.decode(text_ids), timings,
                                self.trace if self.tracing else None, self.stats())


def generate(model, prompt, max_new_tokens=32, temperature=0.0, top_k=None, top_p=None, seed=None,
             trace=False, kv_cache=True, speculative=None, num_draft_tokens=4, **kwargs) -> GenerationResult:
    return Generation(model, prompt, max_new_tokens, temperature, top_k, top_p, seed, trace, kv_cache,
                      speculative=speculative, num_draft_tokens=num_draft_tokens, **kwargs).result()
