"""Speculative decoding: the same greedy text for every draft source, the target's
distribution when sampling, and a trace that says what was drafted and accepted."""
from dataclasses import replace

import numpy as np
import pytest

import llmviz
from llmviz.forward import KVCache, forward
from llmviz.sampling import SamplingSettings, filtered_distribution
from llmviz.speculative import prompt_lookup, truncated_model, verify

PARAGRAPH = ("Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
             "nothing to do: once or twice she had peeped into the book her sister was reading, but it had "
             "no pictures or conversations in it.")


def grounded_prompt(model):
    return model.tokenizer.apply_chat_template("Repeat this text exactly:\n\n" + PARAGRAPH)


# -- the rule on synthetic distributions ------------------------------------------------

def test_prompt_lookup_copies_what_followed_the_last_ngram():
    assert prompt_lookup([5, 6, 7, 8, 9, 1, 6, 7], 3) == [8, 9, 1]
    assert prompt_lookup([5, 6, 7, 8, 1, 2, 3, 7], 2) == [8, 1]      # falls back to a 1-gram
    assert prompt_lookup([1, 2, 3, 4], 4) == []
    assert prompt_lookup([5, 6, 7, 8, 1, 2, 3, 7], 2, min_ngram=2) == []   # a 1-gram match is not enough


def test_greedy_verify_accepts_while_the_draft_is_the_argmax():
    V = 5
    p = np.eye(V, dtype=np.float32)[[2, 3, 1, 4]]                      # target argmax 2, 3, 1, 4
    q = np.eye(V, dtype=np.float32)[[2, 3, 0]]
    n, token, decisions, final = verify(p, q, [2, 3, 0], True, None)
    assert (n, token, final["kind"]) == (2, 1, "resample")
    assert [d["accepted"] for d in decisions] == [True, True, False]
    n, token, _, final = verify(p, q[:2], [2, 3], True, None)
    assert (n, token, final["kind"]) == (2, 1, "bonus")


@pytest.mark.parametrize("point_mass", [False, True])
def test_rejection_sampling_reproduces_the_target_distribution(point_mass):
    """Leviathan et al. 2023, Theorem 1: the first emitted token is distributed as p, whatever q is."""
    rng = np.random.default_rng(0)
    V, N = 6, 40000
    p = np.array([[0.05, 0.4, 0.1, 0.3, 0.15, 0.0], [0.2] * 5 + [0.0]], np.float32)   # [2, V]
    q = np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1]], np.float32)                     # [1, V]
    counts = np.zeros(V)
    for _ in range(N):
        if point_mass:                                                 # e.g. prompt lookup: always token 0
            x, qq = 0, np.eye(V, dtype=np.float32)[[0]]
        else:
            x, qq = int(rng.choice(V, p=q[0])), q
        n, token, _, _ = verify(p, qq, [x], False, rng)
        counts[x if n == 1 else token] += 1
    freq = counts / N
    assert np.abs(freq - p[0]).sum() / 2 < 0.01                       # total variation
    assert freq[5] == 0.0                                              # never a token the target rules out
    naive = q[0] if not point_mass else np.eye(V)[0]
    assert np.abs(naive - p[0]).sum() / 2 > 0.3                        # the draft alone is far from p


def test_sampled_tokens_follow_the_target_on_a_tiny_model(fixtures_dir):
    """A tiny llama as target, a noisy copy of it as draft: the second token's distribution
    (drawn in a speculative step) matches the target's exact marginal."""
    target = llmviz.load_model(str(fixtures_dir / "tiny-llama"), log=lambda *a: None)
    noise = np.random.default_rng(1)
    draft = replace(target, name="tiny-noisy", weights={
        k: (np.asarray(w) + noise.normal(0, 0.1 * float(np.std(w)) + 1e-3, w.shape)).astype(np.float32)
        for k, w in target.weights.items()})
    settings = SamplingSettings(temperature=1.0, top_k=6)
    prompt = [1, 17, 42]

    def dist(ids):                                                      # the target's next-token distribution
        logits = forward(target, np.asarray([ids]), [KVCache(target.config, len(ids))])[0, -1]
        return filtered_distribution(logits, settings).astype(np.float64)

    p1 = dist(prompt)
    exact = sum(p1[t] * dist(prompt + [t]) for t in np.flatnonzero(p1))   # marginal of token 2
    N = 3000
    counts = np.zeros(target.config.vocab_size)
    accepted = proposed = 0
    for seed in range(N):
        g = llmviz.Generation(target, None, max_new_tokens=3, temperature=1.0, top_k=6, seed=seed,
                              prompt_ids=prompt, speculative=draft, num_draft_tokens=2, stop_at_eos=False)
        r = g.result()
        counts[r.token_ids[1]] += 1
        accepted, proposed = accepted + r.stats["accepted"], proposed + r.stats["proposed"]
    support = exact > 0
    assert counts[~support].sum() == 0                                 # nothing the target rules out
    expected = N * exact[support]
    chi2 = float(((counts[support] - expected) ** 2 / expected).sum())
    assert chi2 < chi2_critical(int(support.sum()) - 1), chi2
    assert 0.1 < accepted / proposed < 0.95                            # both accept and reject paths ran


def chi2_critical(df, z=3.09):
    """Upper 0.1% point of the chi-square distribution (Wilson & Hilferty 1931 approximation)."""
    c = 2.0 / (9 * df)
    return df * (1 - c + z * np.sqrt(c)) ** 3


# -- the real model -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain(real_model):
    return llmviz.generate(real_model, grounded_prompt(real_model), max_new_tokens=16)


@pytest.mark.parametrize("source", ["prompt-lookup", "early-exit", "draft-model"])
def test_greedy_speculative_output_is_identical_to_plain(real_model, plain, source):
    spec = truncated_model(real_model, 8) if source == "draft-model" else source
    r = llmviz.generate(real_model, grounded_prompt(real_model), max_new_tokens=16, speculative=spec,
                        num_draft_tokens=4)
    assert r.token_ids == plain.token_ids
    st = r.stats
    assert st["proposed"] > 0 and 0 <= st["accepted"] <= st["proposed"]
    assert st["acceptance_rate"] == pytest.approx(st["accepted"] / st["proposed"], abs=1e-4)
    assert st["mean_acceptance_length"] == pytest.approx(1 + st["accepted"] / st["drafts"], abs=1e-4)
    assert len(st["per_position_acceptance"]) == 4


def test_prompt_lookup_accepts_most_drafts_when_repeating_the_input(real_model, plain):
    r = llmviz.generate(real_model, grounded_prompt(real_model), max_new_tokens=16, speculative="prompt-lookup")
    assert r.stats["acceptance_rate"] > 0.6
    assert r.stats["verify_steps"] < len(plain.token_ids) - 1          # fewer target passes than tokens


def test_speculative_trace_fields(real_model):
    r = llmviz.generate(real_model, grounded_prompt(real_model), max_new_tokens=8, speculative="prompt-lookup",
                        trace=True)
    steps = r.trace.steps
    assert "speculative" not in steps[0].extra                        # the prefill is a plain step
    assert [t for s in steps for t in s.emitted] == r.token_ids
    for s in steps[1:]:
        sp = s.extra["speculative"]
        drafts = sp["draft_tokens"]
        assert s.input_ids[1:] == drafts and len(s.input_ids) == len(drafts) + 1
        assert s.emitted[: sp["accepted"]] == drafts[: sp["accepted"]]
        assert s.emitted[sp["accepted"]] == sp["final_token"] or len(s.emitted) == sp["accepted"]
        assert sp["final_kind"] in ("resample", "bonus")
        assert [d["accepted"] for d in sp["decisions"]][: sp["accepted"]] == [True] * sp["accepted"]
        assert s.rec["layers.0.attn.probs"].shape[1] == len(s.input_ids)   # [H, γ+1, S]
    summary = r.trace.summary()
    assert summary["settings"]["speculative"] == "prompt-lookup"
    assert "speculative" in summary["steps"][1]


def test_speculative_needs_a_cache(real_model):
    with pytest.raises(ValueError, match="kv_cache"):
        llmviz.generate(real_model, "Hi", max_new_tokens=2, kv_cache=False, speculative="prompt-lookup")


def test_attention_of_a_verify_pass_shows_the_rejected_drafts_as_keys(real_model):
    r = llmviz.generate(real_model, "Once upon a time", max_new_tokens=6, speculative="early-exit",
                        num_draft_tokens=3, trace=True)
    rejected = [i for i, s in enumerate(r.trace.steps[1:], start=1)
                if s.extra["speculative"]["accepted"] < len(s.extra["speculative"]["draft_tokens"])]
    assert rejected, "expected at least one rejection from an untrained early exit"
    i = rejected[0]
    st, att = r.trace.steps[i], r.trace.attention(rejected[0], 0)
    assert [k["id"] for k in att["key_tokens"][st.start:]] == st.input_ids      # [last, draft_1, ..., draft_γ]
    assert att["query_positions"] == list(range(st.start, st.start + len(st.input_ids)))
    focus = st.start + st.extra["speculative"]["accepted"]                   # the row that gave the emitted token
    assert att["focus_position"] == focus < att["query_positions"][-1]
    summary = r.trace.summary()["steps"][i]
    lens = r.trace.logit_lens(i)
    assert summary["focus_position"] == lens["focus_position"] == focus
    assert lens["layers"][-1][0]["id"] == summary["top"][0]["id"] == summary["emitted"][-1]["id"]   # greedy


def test_resampled_token_shows_the_residual_distribution(real_model):
    """After a rejection the token is drawn from norm(max(0, p - q)); the step's sampling
    distribution must be that one (with a point-mass draft, the rejected token gets 0)."""
    prompt = real_model.tokenizer.apply_chat_template(
        "Repeat exactly: the cat sat on the mat, the cat sat on the mat, the cat sat on the mat.")
    r = llmviz.generate(real_model, prompt, max_new_tokens=24, temperature=0.7, seed=1,
                        speculative="prompt-lookup", num_draft_tokens=4, trace=True)
    resampled = [s for s in r.trace.steps if s.extra.get("speculative", {}).get("final_kind") == "resample"]
    assert resampled, "this seed was chosen to reject at least one draft"
    for step in resampled:
        spec = step.extra["speculative"]
        rejected = spec["draft_tokens"][spec["accepted"]]
        probs = step.sampling["probs"]
        assert probs[rejected] == 0.0
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert probs[step.sampling["chosen"]] > 0
