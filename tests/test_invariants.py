"""Engine invariants on the tiny random models (tests/fixtures/tiny-*): milliseconds each,
both families (llama: RoPE, GQA, SwiGLU; gpt2: learned positions, biases, GELU).

The optimizations must not change what the model computes: cache on/off, batched or alone,
speculative or plain give the same tokens; attention is causal; the early-exit draft is the
first layers of the same model; every view of a speculative step describes one position.
"""
import numpy as np
import pytest
from conftest import FIXTURES

import llmviz
from llmviz import Generation, GenerationRequest
from llmviz.forward import KVCache, forward
from llmviz.generate import generated_text
from llmviz.sampling import SamplingSettings
from llmviz.speculative import EarlyExitDraft, truncated_model

PROMPTS = ["Alice was beginning to get very tired", "Down the Rabbit-Hole", "She ran across the field"]
MODELS = ["tiny-llama", "tiny-gpt2"]


@pytest.fixture(scope="module", params=MODELS)
def tiny(request):
    return llmviz.load_model(FIXTURES / request.param, log=lambda *_: None)


def run(model, prompt, **fields):
    return Generation(model, GenerationRequest(prompt=prompt, stop_at_eos=False, **fields)).result()


def test_attention_is_causal(tiny):
    """The logits of a prefix do not depend on the tokens after it."""
    ids = tiny.tokenizer.encode(PROMPTS[0])
    full = tiny.logits(ids)                                              # [T, V]
    for k in (1, 3, len(ids) - 1):
        np.testing.assert_allclose(tiny.logits(ids[:k]), full[:k], atol=1e-5)


@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.8, "top_k": 20, "seed": 3}])
def test_cache_on_and_off_give_the_same_tokens_and_logits(tiny, sampling):
    on = run(tiny, PROMPTS[0], max_new_tokens=10, kv_cache=True, trace=True, **sampling)
    off = run(tiny, PROMPTS[0], max_new_tokens=10, kv_cache=False, trace=True, **sampling)
    assert on.token_ids == off.token_ids and len(on.token_ids) == 10
    for a, b in zip(on.trace.steps, off.trace.steps):
        np.testing.assert_allclose(a.logits, b.logits, atol=1e-5)
    assert [s.reused_rows for s in off.trace.steps] == [0] * 10      # the slow path really recomputed


@pytest.mark.parametrize("sampling", [{}, {"temperature": 1.0, "top_p": 0.9, "seed": 5}])
def test_batched_rows_equal_each_prompt_alone(tiny, sampling):
    alone = [run(tiny, p, max_new_tokens=8, **sampling).token_ids for p in PROMPTS]
    together = llmviz.generate_batch(tiny, PROMPTS, max_new_tokens=8, stop_at_eos=False, **sampling)
    assert [r.token_ids for r in together] == alone


@pytest.mark.parametrize("source", ["prompt-lookup", "early-exit", "draft-model"])
def test_greedy_speculative_equals_plain(tiny, source):
    prompt = "the cat sat on the mat, the cat sat on the mat, the cat"
    plain = run(tiny, prompt, max_new_tokens=12)
    spec = truncated_model(tiny, 1) if source == "draft-model" else source
    r = run(tiny, prompt, max_new_tokens=12, speculative=spec, num_draft_tokens=3, early_exit_layers=1)
    assert r.token_ids == plain.token_ids
    assert r.stats["proposed"] > 0


def test_early_exit_draft_is_the_first_layers_and_leaves_the_cache_as_it_was(tiny):
    ids = tiny.tokenizer.encode(PROMPTS[1])
    cache = KVCache(tiny.config, len(ids) + 4)
    forward(tiny, np.asarray([ids[:-1]]), [cache])                       # the run so far
    drafter = EarlyExitDraft(tiny, cache, n_layers=1)
    drafts, q = drafter.propose(ids, 3, SamplingSettings(), None)
    assert cache.length == len(ids) - 1                                  # truncated back once
    first_layer = truncated_model(tiny, 1)
    expected = []
    for _ in range(3):                                                   # the 1-layer model's greedy tokens
        expected.append(int(np.argmax(first_layer.logits(ids + expected)[-1])))
    assert drafts == expected and q.shape == (3, tiny.config.vocab_size)


def test_speculative_views_describe_the_focus_position(tiny):
    """With a rejected draft, the lens, feed-forward and prediction bars all describe the
    position whose prediction gave the emitted token, not the last draft row."""
    r = run(tiny, PROMPTS[0], max_new_tokens=16, speculative="early-exit", early_exit_layers=1,
            num_draft_tokens=3, trace=True)
    summaries = r.trace.summary()["steps"]
    rejected = [i for i, s in enumerate(r.trace.steps)
                if "speculative" in s.extra and s.extra["speculative"]["accepted"] < len(s.input_ids) - 1]
    assert rejected, "an untrained 1-layer exit should be rejected at least once"
    all_ids = r.prompt_ids + r.token_ids
    for i in rejected:
        step, summary = r.trace.steps[i], summaries[i]
        focus = summary["focus_position"]
        assert focus == step.start + step.extra["speculative"]["accepted"] < step.start + len(step.input_ids) - 1
        alone = llmviz.generate(tiny, None, prompt_ids=all_ids[: focus + 1], max_new_tokens=1, trace=True,
                                stop_at_eos=False).trace.steps[0]                # that position, computed alone
        lens = r.trace.logit_lens(i)
        assert lens["focus_position"] == focus
        assert lens["layers"][-1][0]["id"] == summary["top"][0]["id"] == int(np.argmax(alone.logits))
        ffn = r.trace.feedforward(i, 1)
        want = alone.rec["layers.1.ffn.act"][-1]
        assert ffn["top_neurons"][0]["value"] == pytest.approx(float(want[np.argmax(np.abs(want))]), abs=1e-3)
        assert ffn["residual_norms"][-1] == pytest.approx(float(alone.rec["layers.1.resid_norm"][-1]), abs=1e-3)
        assert summary["emitted"][-1]["id"] == all_ids[focus + 1]


def test_plain_steps_focus_on_the_last_input_position(tiny):
    r = run(tiny, PROMPTS[1], max_new_tokens=3, trace=True)
    n = len(r.prompt_ids)
    assert [s["focus_position"] for s in r.trace.summary()["steps"]] == [n - 1, n, n + 1]


def test_stop_ends_the_run_and_says_why(tiny):
    gen = Generation(tiny, GenerationRequest(prompt=PROMPTS[0], max_new_tokens=20, stop_at_eos=False))
    next(gen)
    gen.stop("cancelled by the test")
    assert list(gen) == [] and gen.done
    r = gen.result()
    assert len(r.token_ids) == 1 and r.timings["stopped"] == "cancelled by the test"


def test_the_request_time_limit_stops_between_steps(tiny):
    r = run(tiny, PROMPTS[0], max_new_tokens=20, time_limit_s=1e-9)
    assert r.token_ids and len(r.token_ids) == 1                         # the first step always completes
    assert r.timings["stopped"] == "the server's time limit of 1e-09 s per run was reached after 1 tokens"


def test_kv_cache_rewinds_only_through_truncate(tiny):
    cache = KVCache(tiny.config, 8)
    forward(tiny, np.asarray([[5, 6, 7]]), [cache])
    cache.truncate(1)
    assert cache.length == 1
    with pytest.raises(ValueError, match="cannot truncate a KV cache of 1 positions to 2"):
        cache.truncate(2)
    with pytest.raises(AttributeError):
        cache.length = 3


def test_generated_text_drops_only_the_end_of_turn_that_stopped_it():
    tok = llmviz.load_model(FIXTURES / "tiny-llama", log=lambda *_: None).tokenizer
    ids = tok.encode("Alice was")
    assert generated_text(tok, ids + [2]) == "Alice was"                 # <|im_end|> ended the turn
    assert generated_text(tok, ids[:1] + [2] + ids[1:]) == tok.decode(ids[:1] + [2] + ids[1:])
