"""Batched generation and the continuous-batching scheduler: every row gets the tokens it
would have got alone."""
import threading

import pytest

import llmviz
from llmviz import Generation, Scheduler
from llmviz.quant import quantize_model

PROMPTS = ["The capital of France is", "Once upon a time, in a small village,", "2 + 2 ="]


@pytest.fixture(scope="module")
def alone(real_model):
    return [llmviz.generate(real_model, p, max_new_tokens=6).token_ids for p in PROMPTS]


def test_batch_equals_each_prompt_alone(real_model, alone):
    results = llmviz.generate_batch(real_model, PROMPTS, max_new_tokens=6)
    assert [r.token_ids for r in results] == alone
    assert [r.prompt_ids for r in results] == [real_model.tokenizer.encode(p) for p in PROMPTS]
    assert results[0].trace is None                             # no trace unless asked


def test_batched_steps_are_traced_per_row(real_model):
    results = llmviz.generate_batch(real_model, PROMPTS[:2], max_new_tokens=3, trace=True)
    for r in results:
        steps = r.trace.steps
        assert steps[0].kind == "prefill" and steps[0].input_ids == r.prompt_ids
        assert [s.extra.get("batch_size") for s in steps[1:]] == [2, 2]
        assert steps[1].start == len(r.prompt_ids)              # each row at its own position
        assert steps[1].rec["layers.0.attn.probs"].shape[-1] == len(r.prompt_ids) + 1


def test_sampled_batch_matches_alone_with_the_same_seed(real_model):
    kw = dict(max_new_tokens=5, temperature=0.9, top_k=40, seed=7)
    single = [llmviz.generate(real_model, p, **kw).token_ids for p in PROMPTS[:2]]
    assert [r.token_ids for r in llmviz.generate_batch(real_model, PROMPTS[:2], **kw)] == single


def test_scheduler_concurrent_submits_match_alone(real_model, alone):
    sch = Scheduler(max_batch=4)
    out = [None] * len(PROMPTS)

    def client(i):
        out[i] = [t for step in sch.submit(Generation(real_model, PROMPTS[i], max_new_tokens=6))
                  for t in step.emitted]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    sch.shutdown()
    assert out == alone
    assert sch.largest_batch >= 2                                # the requests shared decode steps


def test_scheduler_cancel_stops_one_request_only(real_model, alone):
    sch = Scheduler(max_batch=4)
    keep = sch.submit(Generation(real_model, PROMPTS[0], max_new_tokens=6))
    gen = Generation(real_model, PROMPTS[1], max_new_tokens=50)
    stop = sch.submit(gen)
    first = next(stop)
    stop.cancel()
    rest = list(stop)
    assert first.kind == "prefill" and len(rest) <= 2              # at most the steps already under way
    assert len(gen.new_ids) < 50 and gen.done
    assert [t for s in keep for t in s.emitted] == alone[0]
    sch.shutdown()


def test_scheduler_batches_models_separately(real_model, alone):
    int8 = quantize_model(real_model, "int8")
    ref = llmviz.generate(int8, PROMPTS[2], max_new_tokens=3).token_ids
    sch = Scheduler()
    a = sch.submit(Generation(real_model, PROMPTS[0], max_new_tokens=6))
    b = sch.submit(Generation(int8, PROMPTS[2], max_new_tokens=3))
    assert [t for s in b for t in s.emitted] == ref
    assert [t for s in a for t in s.emitted] == alone[0]
    sch.shutdown()


def test_scheduler_runs_a_speculative_request_beside_plain_ones(real_model, alone):
    sch = Scheduler()
    plain = sch.submit(Generation(real_model, PROMPTS[0], max_new_tokens=6))
    spec_gen = Generation(real_model, PROMPTS[1], max_new_tokens=6, speculative="early-exit", num_draft_tokens=2)
    spec = sch.submit(spec_gen)
    spec_steps = list(spec)
    assert [t for s in spec_steps for t in s.emitted] == alone[1]
    assert all("speculative" in s.extra for s in spec_steps[1:])
    assert [t for s in plain for t in s.emitted] == alone[0]
    sch.shutdown()
