"""generate(): what a caller sees."""
import numpy as np
import pytest

import llmviz


def test_logits_are_float32_full_sequence(real_model):
    ids = real_model.tokenizer.encode("Hello there")
    logits = real_model.logits(ids)
    assert logits.shape == (len(ids), real_model.config.vocab_size)
    assert logits.dtype == np.float32


def test_every_activation_stays_float32(real_model):
    r = llmviz.generate(real_model, "Hi", max_new_tokens=2, trace=True)
    for step in r.trace.steps:
        for name, a in step.rec.items():
            assert np.asarray(a).dtype == np.float32, name
        assert step.logits.dtype == np.float32


def test_greedy_answer(real_model):
    r = llmviz.generate(real_model, "The capital of France is", max_new_tokens=2)
    assert r.text == " Paris."
    assert len(r.token_ids) == 2
    assert r.timings["per_token_ms"] and r.timings["decode_tokens_per_second"] > 0


def test_chat_prompt_stops_at_end_of_turn(real_model):
    prompt = real_model.tokenizer.apply_chat_template("Say hello.")
    r = llmviz.generate(real_model, prompt, max_new_tokens=40)
    assert r.token_ids[-1] == 2 and "<|im_end|>" not in r.text and r.text.strip()


def test_empty_prompt_is_refused(real_model):
    with pytest.raises(ValueError, match="the prompt is empty"):
        llmviz.generate(real_model, "", max_new_tokens=2)


def test_context_length_is_enforced(real_model):
    with pytest.raises(ValueError, match="exceeds the model's context length of 8192 tokens"):
        llmviz.generate(real_model, "Hi", max_new_tokens=9000)
