"""Greedy, temperature, top-k, top-p and the seeded random draw."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmviz
from llmviz.ops import softmax
from llmviz.sampling import SamplingSettings, draw, draw_intervals, filtered_distribution, sample, top_k_mask

LOGITS = np.array([3.0, 2.5, 2.0, 1.0, 0.5, 0.0, -1.0, -3.0], np.float32)


def test_greedy_is_argmax():
    token, info = sample(LOGITS, SamplingSettings(), np.random.default_rng(0))
    assert token == 0 and info["u"] is None


def test_temperature_flattens_distribution():
    p1 = filtered_distribution(LOGITS, SamplingSettings(temperature=1.0))
    p2 = filtered_distribution(LOGITS, SamplingSettings(temperature=2.0))
    np.testing.assert_allclose(p1, softmax(LOGITS), rtol=1e-6)
    np.testing.assert_allclose(p2, softmax(LOGITS / 2), rtol=1e-6)
    assert p2.max() < p1.max()
    assert p1.dtype == np.float32


def test_top_k_keeps_k_tokens_renormalised():
    p = filtered_distribution(LOGITS, SamplingSettings(temperature=1.0, top_k=3))
    assert np.count_nonzero(p) == 3
    full = softmax(LOGITS)
    np.testing.assert_allclose(p[:3], full[:3] / full[:3].sum(), rtol=1e-6)
    assert p.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("top_p", [0.3, 0.5, 0.8, 0.95, 0.999])
def test_top_p_keeps_smallest_set_reaching_p(top_p):
    full = softmax(LOGITS)
    p = filtered_distribution(LOGITS, SamplingSettings(temperature=1.0, top_p=top_p))
    kept = np.flatnonzero(p)
    mass = full[kept].sum()
    assert mass >= top_p - 1e-6                       # reaches p
    assert mass - full[kept].min() < top_p            # and no smaller set would
    assert set(kept) == set(range(len(kept)))         # the most likely tokens


def test_draw_walks_the_tokens_in_descending_probability():
    """Intervals laid out as the page stacks them: token 2 [0, 0.7), token 1 [0.7, 0.9), token 0 [0.9, 1)."""
    p = np.array([0.1, 0.2, 0.7], np.float32)
    assert [draw(p, u) for u in (0.0, 0.69, 0.71, 0.89, 0.91, 0.999)] == [2, 2, 1, 1, 0, 0]


def test_draw_breaks_ties_by_lower_token_id_and_skips_zeros():
    p = np.array([0.0, 0.25, 0.5, 0.0, 0.25], np.float32)
    ids, starts, ends = draw_intervals(p)
    assert ids.tolist() == [2, 1, 4]
    assert starts.tolist() == [0.0, 0.5, 0.75] and ends.tolist() == [0.5, 0.75, 1.0]
    assert [draw(p, u) for u in (0.1, 0.6, 0.8, 0.9999)] == [2, 1, 4, 4]


SAMPLED = [dict(temperature=0.7), dict(temperature=1.0, top_k=5), dict(temperature=1.3, top_p=0.9),
           dict(temperature=1.0, top_k=40, top_p=0.95)]


@pytest.mark.parametrize("settings", SAMPLED, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_u_falls_in_the_chosen_tokens_interval_in_the_order_shown(real_model, settings):
    """Issue 9: for every sampled step, u lies in the chosen token's slice of the cumulative
    bar, in the order the step summary lists (descending p_final, ties by token id)."""
    sampled = 0
    for seed in range(4):
        r = llmviz.generate(real_model, "Once upon a time", max_new_tokens=6, seed=seed, trace=True, **settings)
        for step in r.trace.summary()["steps"]:
            s = step["sampling"]
            walk = s["draw"]
            assert [w["rank"] for w in walk[:10]] == list(range(min(10, s["kept"])))
            assert all(a["end"] == b["start"] for a, b in zip(walk[:10], walk[1:10]))      # laid end to end
            assert all((a["p"], -a["id"]) >= (b["p"], -b["id"]) for a, b in zip(walk, walk[1:]))
            chosen = [w for w in walk if w["id"] == s["chosen"]["id"]]
            assert len(chosen) == 1 and chosen[0]["start"] <= s["u"] < chosen[0]["end"]
            assert chosen[0]["id"] == step["emitted"][0]["id"]
            sampled += 1
    assert sampled == 24


def test_greedy_steps_have_no_draw(real_model):
    r = llmviz.generate(real_model, "Once upon a time", max_new_tokens=2, trace=True)
    assert [s["sampling"]["draw"] for s in r.trace.summary()["steps"]] == [None, None]


def test_sampled_frequencies_match_distribution():
    rng = np.random.default_rng(1)
    s = SamplingSettings(temperature=1.0, top_k=4)
    p = filtered_distribution(LOGITS, s)
    counts = np.bincount([sample(LOGITS, s, rng)[0] for _ in range(20000)], minlength=len(LOGITS))
    np.testing.assert_allclose(counts / counts.sum(), p, atol=0.015)


def test_seed_makes_run_reproducible(real_model):
    kw = dict(max_new_tokens=12, temperature=0.9, top_p=0.95, seed=1234)
    a = llmviz.generate(real_model, "Once upon a time", **kw)
    b = llmviz.generate(real_model, "Once upon a time", **kw)
    c = llmviz.generate(real_model, "Once upon a time", **{**kw, "seed": 99})
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids


def test_forced_token_continues_from_the_learners_choice(real_model):
    plain = llmviz.generate(real_model, "The capital of France is", max_new_tokens=3)
    forced = llmviz.generate(real_model, "The capital of France is", max_new_tokens=3,
                             forced_ids=[real_model.tokenizer.encode(" a")[0]])
    assert plain.text.startswith(" Paris")
    assert forced.text.startswith(" a")
    assert forced.token_ids[1:] != plain.token_ids[1:]


@pytest.mark.parametrize("temperature", [1e-30, 1e-45, 5e-324, 1e30])
def test_extreme_temperatures_give_a_distribution(temperature):
    """A tiny temperature is (numerically) greedy, a huge one uniform; never NaN."""
    p = filtered_distribution(LOGITS, SamplingSettings(temperature=temperature))
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0, abs=1e-5)
    if temperature < 1:
        assert p[0] == pytest.approx(1.0)
    else:
        np.testing.assert_allclose(p, 1 / len(LOGITS), rtol=1e-4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=60), st.integers(1, 70))
def test_top_k_keeps_the_first_k_of_the_draw_order(levels, k):
    """top-k by partition keeps exactly the first k tokens of the draw order (descending
    probability, ties to lower ids), however many values tie at the k-th place."""
    probs = np.asarray(levels, np.float32) / 7 + 0.01                     # few distinct values: many ties
    k = min(k, probs.size)
    first_k = np.argsort(-probs, kind="stable")[:k]
    assert sorted(np.flatnonzero(top_k_mask(probs, k))) == sorted(first_k)
