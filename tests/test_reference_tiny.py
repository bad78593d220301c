"""Logits of every loader path against Hugging Face transformers (fixtures made by
tools/make_reference.py, see tests/fixtures/README.md). Tolerance: 1e-3 max abs."""
import numpy as np
import pytest
from conftest import FIXTURES

import llmviz

TOL = 1e-3
REF = FIXTURES / "reference"

MODELS = {
    "tiny-gpt2": FIXTURES / "tiny-gpt2",                      # save_pretrained names (transformer.h.0...)
    "tiny-gpt2-hubnames": FIXTURES / "tiny-gpt2-hubnames",    # the hub's names (h.0...)
    "tiny-llama": FIXTURES / "tiny-llama",                    # untied lm_head, GQA
    **{f"tiny-llama-gguf-{q}": FIXTURES / "tiny-llama-gguf" / f"tiny-llama-{q}.gguf"
       for q in ("F32", "F16", "Q8_0", "Q4_0", "Q4_1")},     # llama.cpp layout, permuted q/k
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    name = request.param
    return name, llmviz.load_model(MODELS[name]), np.load(REF / f"{name}.npz")


def test_logits_match_transformers(case):
    name, model, ref = case
    for c in ref["cases"]:
        ids = ref[f"{c}__ids"].tolist()
        got = model.logits(ids)
        want = ref[f"{c}__logits"]
        diff = float(np.abs(got - want).max())
        print(f"{name}/{c}: T={len(ids)} max|diff|={diff:.2e}")
        assert got.dtype == np.float32
        assert diff < TOL, f"{name}/{c}: max abs logit difference {diff:.2e} >= {TOL}"


def test_greedy_continuation_matches_transformers(case):
    name, model, ref = case
    for c in ref["cases"]:
        ids = ref[f"{c}__ids"].tolist()
        want = ref[f"{c}__greedy"].tolist()
        got = llmviz.generate(model, None, prompt_ids=ids, max_new_tokens=len(want), stop_at_eos=False)
        assert got.token_ids == want, f"{name}/{c}"


def test_tokenizer_matches_transformers(case):
    name, model, ref = case
    for c in ref["cases"]:
        assert model.tokenizer.encode(str(ref[f"{c}__text"])) == ref[f"{c}__ids"].tolist(), f"{name}/{c}"


def test_architecture_read_from_config(case):
    name, model, _ = case
    cfg = model.config
    if "gpt2" in name:
        assert (cfg.arch, cfg.position_kind, cfg.n_kv_heads, cfg.tied_embeddings) == ("gpt2", "learned", 4, True)
    else:
        assert (cfg.arch, cfg.position_kind, cfg.n_heads, cfg.n_kv_heads) == ("llama", "rope", 4, 2)
        assert not cfg.tied_embeddings
