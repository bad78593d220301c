"""The recorder: every stage's intermediates, with the right shapes and meaning."""
import json

import numpy as np
import pytest

import llmviz

PROMPT = "The quick brown fox jumps over"


@pytest.fixture(scope="module")
def run(real_model):
    return llmviz.generate(real_model, PROMPT, max_new_tokens=4, trace=True)


def test_tracing_does_not_change_the_output(real_model, run):
    plain = llmviz.generate(real_model, PROMPT, max_new_tokens=4)
    assert plain.token_ids == run.token_ids
    assert plain.trace is None


def test_prefill_attention_is_causal_and_rows_sum_to_one(real_model, run):
    cfg = real_model.config
    T = len(run.prompt_ids)
    for layer in (0, cfg.n_layers // 2, cfg.n_layers - 1):
        probs = np.array(run.trace.attention(0, layer)["probs"])
        assert probs.shape == (cfg.n_heads, T, T)
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-3)   # rounded to 4 decimals for JSON
        assert np.all(np.triu(probs, k=1) == 0)                      # no token sees the future
    raw = run.trace.steps[0].rec["layers.0.attn.probs"]
    assert raw.dtype == np.float32
    np.testing.assert_allclose(raw.sum(-1), 1.0, atol=1e-5)


def test_decode_step_attends_to_cached_keys(real_model, run):
    T = len(run.prompt_ids)
    att = run.trace.attention(2, 5)                                  # the 3rd step: 1 query, T+2 keys
    probs = np.array(att["probs"])
    assert probs.shape == (real_model.config.n_heads, 1, T + 2)
    assert att["cached_keys"] == T + 1
    assert [t["id"] for t in att["key_tokens"]] == run.prompt_ids + run.token_ids[:2]


def test_step_summary_fields(real_model, run):
    s = run.trace.summary()
    json.dumps(s, allow_nan=False)
    cfg = real_model.config
    assert [t["id"] for t in s["prompt_tokens"]] == run.prompt_ids
    first, second = s["steps"][0], s["steps"][1]
    assert first["kind"] == "prefill" and second["kind"] == "decode"
    assert first["kv"] == {"reused_rows": 0, "computed_rows": len(run.prompt_ids),
                           "cache_bytes": len(run.prompt_ids) * cfg.kv_bytes_per_token()}
    assert second["kv"]["reused_rows"] == len(run.prompt_ids)
    assert len(first["residual_norms"]) == cfg.n_layers
    assert len(first["residual_norms"][0]) == len(run.prompt_ids)
    assert len(first["attention_focus"]) == cfg.n_layers and len(first["attention_focus"][0]) == cfg.n_heads
    assert first["top"][0]["id"] == run.token_ids[0]                 # greedy picks the top token
    assert first["emitted"][0]["id"] == run.token_ids[0]
    assert sum(c["prob"] for c in first["top"]) <= 1.0
    assert set(first["timings_ms"]) == {"embed", "attention", "feedforward", "prediction", "sampling", "total"}


def test_embedding_shows_rotary_angles_for_llama(real_model, run):
    e = run.trace.embedding(0)
    T, D = len(run.prompt_ids), real_model.config.d_model
    assert np.array(e["vectors"]).shape == (T, D)
    assert e["position"]["kind"] == "rope"
    angles = np.array(e["position"]["angles"])
    assert angles.shape == (T, real_model.config.d_head // 2)
    np.testing.assert_allclose(angles[:, 0], np.arange(T), atol=1e-4)   # the fastest pair turns 1 rad per token
    assert np.array(e["pca"]["points"]).shape == (T, 2)


def test_feedforward_and_logit_lens(real_model, run):
    f = run.trace.feedforward(1, 3)
    assert f["size"] == real_model.config.d_ff
    assert sum(f["histogram"]["counts"]) == real_model.config.d_ff
    vals = [abs(n["value"]) for n in f["top_neurons"]]
    assert vals == sorted(vals, reverse=True)
    lens = run.trace.logit_lens(0)["layers"]
    assert len(lens) == real_model.config.n_layers
    assert lens[-1][0]["id"] == run.token_ids[0]    # the last layer's lens is the model's own prediction


def test_bad_step_and_layer_raise(run):
    with pytest.raises(IndexError, match="step 99 does not exist"):
        run.trace.attention(99, 0)
    with pytest.raises(IndexError, match="layer 30 does not exist"):
        run.trace.attention(0, 30)
