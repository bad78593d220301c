"""The generation loop: prefill the prompt, then one token per step.

A `GenerationRequest` says what to generate; a `Generation` is one run of it, an
iterator of Steps, so a server can stream each step as it is computed and stop early
(`stop(reason)`, or the request's time limit). `generate()` runs it to the end.
Per-run state (KV cache, RNG, trace) lives here, never on the model.

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


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str | None = None              # the text to continue (tokenized without adding any token)
    prompt_ids: tuple | None = None        # or its token ids; when given, prompt is ignored
    max_new_tokens: int = 32               # stop after this many new tokens
    temperature: float = 0.0               # 0 means greedy (argmax)
    top_k: int | None = None               # sample among the k most likely tokens only
    top_p: float | None = None             # ... and the smallest set whose probability reaches p
    seed: int | None = None                # fixes every random draw; None picks one (recorded in the trace)
    trace: bool = False                    # record every intermediate for the page (llmviz/trace.py)
    kv_cache: bool = True                  # False recomputes every K/V row at every step
    forced_ids: tuple = ()                 # emit these tokens first instead of the sampled ones
    stop_at_eos: bool = True               # stop after an end-of-turn token
    speculative: object = None             # None | "prompt-lookup" | "early-exit" | a draft Model
    num_draft_tokens: int = 4              # γ: draft tokens checked per verify pass
    early_exit_layers: int | None = None   # layers of the "early-exit" draft (default: 4/5 of them)
    time_limit_s: float | None = None      # stop between steps once the run has computed this long


@dataclass
class GenerationResult:
    prompt_ids: list
    token_ids: list            # the new tokens
    text: str                  # their decoded text (generated_text)
    timings: dict
    trace: Trace | None = None
    stats: dict = field(default_factory=dict)   # e.g. speculative-decoding acceptance


def generated_text(tokenizer, ids) -> str:
    """The text of generated tokens: all of them decoded, except the end-of-turn token
    that stopped the generation (it is a signal, not text). The one rule for the run's text."""
    ids = list(ids)
    if ids and ids[-1] in tokenizer.eos_ids:
        ids = ids[:-1]
    return tokenizer.decode(ids)


class Generation:
    """One run of a model on one GenerationRequest: an iterator of Steps.

    It owns the run's state (tokens so far, RNG, KV cache, draft source, trace) and is the
    only code that changes it; from outside, a run is read, stepped (next(), or pending()
    and accept() for a batched step) or ended with stop(reason).

        gen = Generation(model, GenerationRequest(prompt="Hello", max_new_tokens=8))
        for step in gen: ...                     # or gen.result()

    `Generation(model, "Hello", max_new_tokens=8)` is shorthand for the same request.
    """

    def __init__(self, model, request, **fields):
        if not isinstance(request, GenerationRequest):
            request = GenerationRequest(prompt=request, **fields)
        t0 = time.perf_counter()
        self.model = model
        self.request = r = request
        self.prompt_ids = list(r.prompt_ids) if r.prompt_ids is not None else model.tokenizer.encode(r.prompt)
        tokenize_ms = round((time.perf_counter() - t0) * 1000, 3)
        check_length(len(self.prompt_ids), r.max_new_tokens, model.config.context_length)
        self.sampling = SamplingSettings(float(r.temperature), r.top_k, r.top_p)
        self.seed = int(r.seed) if r.seed is not None else int(np.random.SeedSequence().entropy % (2 ** 31))
        self.rng = np.random.default_rng(self.seed)
        self.cache = KVCache(model.config, len(self.prompt_ids) + r.max_new_tokens)
        self.new_ids = []
        if r.speculative is not None:
            check_speculative(r)
        self.drafter = make_drafter(r.speculative, model, self.cache, r.early_exit_layers)
        self.spec_stats = SpecStats(self.drafter.name, r.num_draft_tokens) if self.drafter else None
        self.trace = Trace(model, self.settings(), self.prompt_ids)
        self.trace.timings["tokenize_ms"] = tokenize_ms
        self._done = r.max_new_tokens < 1
        self._deadline = None                      # set when the first step starts
        self._pending = None                       # (start row, recorder) of the step under way

    def settings(self) -> dict:
        """The settings the trace records (what reproduces the run)."""
        r = self.request
        out = {"max_new_tokens": r.max_new_tokens, "temperature": self.sampling.temperature, "top_k": r.top_k,
               "top_p": r.top_p, "seed": self.seed, "kv_cache": r.kv_cache, "quantization": self.model.quantization,
               "forced_ids": list(r.forced_ids)}
        if self.drafter is not None:
            out.update(speculative=self.drafter.name, num_draft_tokens=r.num_draft_tokens)
            if getattr(self.drafter, "n_layers", None):
                out["early_exit_layers"] = self.drafter.n_layers
        return out

    @property
    def done(self) -> bool:
        return self._done

    @property
    def speculative(self) -> bool:
        """True when the next step is a speculative one (it cannot join a batched forward)."""
        return self.drafter is not None and bool(self.trace.steps)

    def stop(self, reason: str):
        """End the run after the step under way; trace.timings["stopped"] keeps the reason."""
        if not self._done:
            self._done = True
            self.trace.timings["stopped"] = reason

    def _begin_step(self):
        if self._deadline is None and self.request.time_limit_s:
            self._deadline = time.monotonic() + self.request.time_limit_s

    # A step is split in two so that a scheduler can run the forward passes of many
    # Generations as one batch: pending() says what to compute, accept() takes the logits.
    def pending(self):
        """-> (input ids, cache, recorder or None) for this step's forward pass."""
        self._begin_step()
        if not self.request.kv_cache:              # recompute every K/V row from scratch
            self.cache.truncate(0)
        start, rec = self.cache.length, Recorder() if self.request.trace else None
        self._pending = (start, rec)
        return (self.prompt_ids + self.new_ids)[start:], self.cache, rec

    def accept(self, logits, seconds, extra=None) -> Step:
        """logits [V] of the last input position -> the Step (sampling done here)."""
        t1 = time.perf_counter()
        token, info = sample(logits, self.sampling, self.rng)
        forced = self.request.forced_ids
        if len(self.new_ids) < len(forced):
            token = int(forced[len(self.new_ids)])
        start, rec = self._pending
        inputs = (self.prompt_ids + self.new_ids)[start:]
        return self.append(inputs, start, rec, logits, self.sampling_record(info["u"], info["probs"], token),
                           [token], {**seconds, "sampling": time.perf_counter() - t1}, extra or {})

    def sampling_record(self, u, probs, token) -> dict:
        """What the trace keeps of one sampling decision: settings, the draw, the distribution."""
        s = self.sampling
        return {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p,
                "u": u, "probs": probs, "chosen": token}

    def append(self, inputs, start, rec, logits, sampling, emitted, seconds, extra, focus=None) -> Step:
        """Build the finished step (the one place a Step is made), add its tokens to the run,
        and end the run on an end-of-turn token, at max_new_tokens or at the time limit.
        focus: the input row whose prediction gave the last emitted token (default: the last row)."""
        seconds["total"] = sum(seconds.values())
        step = Step(index=len(self.trace.steps), kind="decode" if self.trace.steps else "prefill",
                    input_ids=list(inputs), start=start, reused_rows=start,
                    cache_bytes=self.cache.nbytes_used if self.request.kv_cache else 0, logits=logits,
                    focus=len(inputs) - 1 if focus is None else focus, sampling=sampling, emitted=emitted,
                    seconds=seconds, rec=rec.data if rec else {}, extra=extra)
        self.new_ids.extend(emitted)
        self.trace.steps.append(step)
        self._pending = None
        if (self.request.stop_at_eos and emitted[-1] in self.model.tokenizer.eos_ids) or \
                len(self.new_ids) >= self.request.max_new_tokens:
            self._done = True
        if self._deadline is not None and time.monotonic() > self._deadline:
            self.stop(f"the server's time limit of {self.request.time_limit_s} s per run was reached "
                      f"after {len(self.new_ids)} tokens")
        return step

    def __iter__(self):
        return self

    def __next__(self) -> Step:
        if self._done:
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
        self._begin_step()
        t0 = time.perf_counter()
        ids = self.prompt_ids + self.new_ids
        start = self.cache.length                  # == len(ids) - 1: the last token is not cached yet
        gamma = min(self.request.num_draft_tokens, self.request.max_new_tokens - len(self.new_ids) - 1)
        drafts, q = self.drafter.propose(ids, gamma, self.sampling, self.rng) if gamma > 0 else ([], None)
        t1 = time.perf_counter()
        inputs, rec, clock = [ids[-1]] + list(drafts), Recorder() if self.request.trace else None, StageClock()
        logits = forward(self.model, np.asarray([inputs]), [self.cache], recs=[rec], clock=clock,
                         all_logits=True)[0]                                     # [γ+1, V]
        t2 = time.perf_counter()
        p = np.stack([filtered_distribution(row, self.sampling) for row in logits])  # [γ+1, V]
        n_acc, token, decisions, final = verify(p, q, drafts, self.sampling.greedy, self.rng)
        self.cache.truncate(start + 1 + n_acc)     # drop the K/V rows of rejected draft tokens
        self.drafter.rollback(self.cache.length)
        emitted = list(drafts[:n_acc]) + [token]
        eos = [i for i, t in enumerate(emitted) if self.request.stop_at_eos and t in self.model.tokenizer.eos_ids]
        emitted = emitted[: eos[0] + 1] if eos else emitted
        focus = len(emitted) - 1                   # the row whose prediction gave the last emitted token
        sampling = (self.sampling_record(final["u"], final["probs"], token) if focus == n_acc
                    else self.sampling_record(None, p[focus], emitted[-1]))   # stopped at an accepted draft
        self.spec_stats.add(len(drafts), n_acc, len(emitted))
        seconds = {**clock.seconds, "draft": t1 - t0, "sampling": time.perf_counter() - t2}
        extra = {"speculative": {"source": self.drafter.name, "draft_tokens": [int(t) for t in drafts],
                                 "accepted": n_acc, "decisions": decisions, "final_token": int(token),
                                 "final_kind": final["kind"], "discarded_rows": len(drafts) - n_acc}}
        return self.append(inputs, start, rec, logits[focus], sampling, emitted, seconds, extra, focus)

    def stats(self) -> dict:
        return self.spec_stats.summary() if self.spec_stats is not None else {}

    def result(self) -> GenerationResult:
        """Run to the end; -> the tokens, text, timings (and trace). Frees the KV caches."""
        for _ in self:
            pass
        self.cache = self.drafter = None           # only needed while generating
        self.trace.timings = run_timings(self.trace)
        return GenerationResult(self.prompt_ids, list(self.new_ids),
                                generated_text(self.model.tokenizer, self.new_ids), self.trace.timings,
                                self.trace if self.request.trace else None, self.stats())


def check_length(n_prompt, max_new_tokens, context_length):
    if not n_prompt:
        raise ValueError("the prompt is empty: there is no token to start from")
    if n_prompt + max_new_tokens > context_length:
        raise ValueError(f"prompt ({n_prompt} tokens) + max_new_tokens ({max_new_tokens}) "
                         f"exceeds the model's context length of {context_length} tokens")


def check_speculative(r: GenerationRequest):
    if not r.kv_cache or r.forced_ids:
        raise ValueError("speculative decoding needs kv_cache=True and no forced tokens")
    if int(r.num_draft_tokens) < 1:
        raise ValueError("num_draft_tokens must be at least 1")


def run_timings(trace) -> dict:
    """The run's timings from its steps: prefill, per token, decode rate, per stage."""
    steps = trace.steps
    per_token = [s.seconds["total"] for s in steps]
    decode = per_token[1:]
    decode_tokens = sum(len(s.emitted) for s in steps[1:])
    return {
        **trace.timings,
        "prefill_ms": round(per_token[0] * 1000, 3) if per_token else 0.0,
        "per_token_ms": [round(t * 1000, 3) for t in per_token],
        "decode_tokens_per_second": round(decode_tokens / sum(decode), 2) if decode else None,
        "total_ms": round(sum(per_token) * 1000 + trace.timings["tokenize_ms"], 3),
        "stage_ms": {k: round(sum(s.seconds.get(k, 0.0) for s in steps) * 1000, 3)
                     for k in ("embed", "attention", "feedforward", "prediction", "sampling", "draft")},
    }


def generate(model, prompt, **fields) -> GenerationResult:
    """Run one request to the end: generate(model, "Once upon a time", max_new_tokens=20).
    fields: those of GenerationRequest."""
    return Generation(model, GenerationRequest(prompt=prompt, **fields)).result()
