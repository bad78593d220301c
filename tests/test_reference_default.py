"""The default model (SmolLM2-135M-Instruct) against Hugging Face transformers on the
same GGUF weights (tests/fixtures/reference/smollm2-135m.*, made by
tools/make_reference.py). Logits are compared at every position, on a fixed subset
of 1,024 vocabulary ids plus transformers' top 16, within 1e-3 max abs."""
import json

import numpy as np
import pytest
from conftest import FIXTURES

import llmviz

TOL = 1e-3
REF = np.load(FIXTURES / "reference" / "smollm2-135m.npz")
META = json.loads((FIXTURES / "reference" / "smollm2-135m.json").read_text())
CASES = [str(c) for c in REF["cases"]]


@pytest.mark.parametrize("case", CASES)
def test_logits_match_transformers_at_every_position(real_model, case):
    ids = REF[f"{case}__ids"].tolist()
    logits = real_model.logits(ids)                                   # [T, V]
    subset = REF["subset_ids"]
    d_subset = np.abs(logits[:, subset] - REF[f"{case}__subset_logits"]).max()
    top = REF[f"{case}__top_ids"]
    d_top = np.abs(np.take_along_axis(logits, top, axis=1) - REF[f"{case}__top_logits"]).max()
    print(f"{case}: T={len(ids)} max|diff| subset={d_subset:.2e} top16={d_top:.2e}")
    assert d_subset < TOL and d_top < TOL
    np.testing.assert_array_equal(logits.argmax(-1), top[:, 0])      # same prediction everywhere


@pytest.mark.parametrize("case", CASES)
def test_greedy_continuation_matches_transformers(real_model, case):
    ids = REF[f"{case}__ids"].tolist()
    want = REF[f"{case}__greedy"].tolist()
    got = llmviz.generate(real_model, None, prompt_ids=ids, max_new_tokens=len(want), stop_at_eos=False)
    assert got.token_ids == want


@pytest.mark.parametrize("case", CASES)
def test_prompt_tokens_match_transformers(real_model, case):
    assert real_model.tokenizer.encode(str(REF[f"{case}__text"])) == REF[f"{case}__ids"].tolist()


@pytest.mark.parametrize("case", META["tokenizer_cases"], ids=lambda c: repr(c["text"])[:24])
def test_tokenizer_matches_transformers(real_model, case):
    assert real_model.tokenizer.encode(case["text"]) == case["ids"]
    assert real_model.tokenizer.decode(case["ids"]) == case["decoded"]
