"""Weight-only quantization: the number formats, the matrix forward() multiplies by, and the
accuracy and memory a user sees."""
import numpy as np
import pytest

import llmviz
from llmviz import quant
from llmviz.quant import GROUP, QuantizedMatrix

ALICE = "llmviz/data/alice-ch1-2.txt"


@pytest.fixture(scope="module")
def w():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, (128, 96)).astype(np.float32)
    a[3, 5] = 1.5                                   # an outlier: its channel / group gets a big scale
    return a


def test_int8_per_channel_error_is_at_most_half_a_step(w):
    q, scale = quant.quantize_int8_per_channel(w)
    assert q.dtype == np.int8 and scale.shape == (96,) and scale.dtype == np.float32
    err = np.abs(quant.dequantize_int8_per_channel(q, scale) - w)             # [in, out]
    assert np.all(err <= scale / 2 * (1 + 1e-5))
    assert err.max() > 0                                                      # it is lossy


def test_int8_groups_error_is_at_most_half_a_step(w):
    q, scale = quant.quantize_int8_groups(w)
    assert scale.shape == (128 // GROUP, 96)
    err = np.abs(quant.dequantize_int8_groups(q, scale) - w)
    assert np.all(err <= quant.expand_groups(scale) / 2 * (1 + 1e-5))
    # groups isolate the outlier: only its own group of 32 rows pays for it
    q_pc, s_pc = quant.quantize_int8_per_channel(w)
    err_pc = np.abs(quant.dequantize_int8_per_channel(q_pc, s_pc) - w)
    assert err[GROUP:, 5].max() < err_pc[GROUP:, 5].max()


def test_int4_packs_two_codes_per_byte_and_bounds_the_error(w):
    packed, scale = quant.quantize_int4_groups(w)
    assert packed.dtype == np.uint8 and packed.shape == (64, 96)
    codes = quant.unpack_int4(packed)
    assert codes.min() >= -8 and codes.max() <= 7
    assert np.array_equal(quant.pack_int4(codes), packed)
    err = np.abs(quant.dequantize_int4_groups(packed, scale) - w)
    assert np.all(err <= quant.expand_groups(scale) / 2 * (1 + 1e-5))


@pytest.mark.parametrize("kind", ["int8", "int8-g32", "int4"])
def test_quantized_matrix_multiplies_like_its_dequantized_array(w, kind, monkeypatch):
    monkeypatch.setattr(quant, "BLOCK_ELEMS", 32 * 96)         # force several row blocks
    qm = QuantizedMatrix.from_float(w, kind)
    x = np.random.default_rng(1).normal(size=(2, 3, 128)).astype(np.float32)
    y = x @ qm
    assert y.shape == (2, 3, 96) and y.dtype == np.float32
    np.testing.assert_allclose(y, x @ qm.dequantize(), rtol=1e-4, atol=1e-5)
    ids = np.array([[0, 95], [7, 7]])
    np.testing.assert_allclose(qm.T[ids], qm.dequantize().T[ids], rtol=1e-6)
    bits = {"int8": 8 + 32 / 128, "int8-g32": 8 + 1, "int4": 4 + 1}[kind]
    assert qm.bits_per_weight == pytest.approx(bits)


def test_unknown_kind_is_refused(real_model):
    with pytest.raises(ValueError, match="unknown quantization"):
        quant.quantize_model(real_model, "int3")


@pytest.fixture(scope="module")
def quantized(real_model):
    return {k: quant.quantize_model(real_model, k) for k in ("int8", "int4")}


def test_weight_memory_shrinks(real_model, quantized):
    fp32 = real_model.nbytes
    assert quantized["int8"].nbytes == pytest.approx(fp32 / 4, rel=0.02)      # 8 bits + a scale per column
    assert quantized["int4"].nbytes == pytest.approx(fp32 * 5 / 32, rel=0.02)  # 4 bits + a float32 per 32
    assert quantized["int8"].quantization == "int8" and real_model.quantization == "fp32"
    assert quantized["int8"].tokenizer is real_model.tokenizer


@pytest.mark.parametrize("kind", quant.KINDS)
@pytest.mark.parametrize("fixture", ["tiny-llama", "tiny-gpt2"])
def test_byte_counts_from_shapes_equal_the_quantized_models(fixtures_dir, fixture, kind):
    """The sizes the page shows for every format, computed without quantizing."""
    model = llmviz.load_model(fixtures_dir / fixture, log=lambda *a: None)
    assert quant.model_nbytes(model, kind) == quant.quantize_model(model, kind).nbytes


def test_accuracy_on_the_shipped_text(real_model, quantized):
    ids = real_model.tokenizer.encode(open(ALICE).read())
    assert len(ids) >= 2000
    res = quant.evaluate(real_model, quantized, ids[:129], window=128)
    i8, i4 = res["int8"], res["int4"]
    assert i8["mean_kl"] < 0.02 and i8["top1_agreement"] > 0.9
    assert i4["mean_kl"] > i8["mean_kl"] and i4["top1_agreement"] < i8["top1_agreement"] + 1e-9
    assert i8["perplexity"] == pytest.approx(res["ref"]["perplexity"], rel=0.05)
    assert res["ref"]["tokens"] == 128


def test_int8_model_generates_the_same_greedy_answer(real_model, quantized):
    r = llmviz.generate(quantized["int8"], "The capital of France is", max_new_tokens=2, trace=True)
    assert r.text == " Paris."
    assert r.trace.summary()["model"]["quantization"] == "int8"
    assert r.trace.steps[-1].logits.dtype == np.float32


def test_load_model_quantizes(real_model):
    m = llmviz.load_model(quantization="int4")
    assert m.quantization == "int4" and m.nbytes < real_model.nbytes / 6
