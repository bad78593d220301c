"""Weight-only quantization: the number formats, the matrix forward() multiplies by, and the
accuracy and memory a user sees. The fused kernels themselves: tests/test_kernels.py."""
import numpy as np
import pytest

import llmviz
from llmviz import quant
from llmviz.quant import GROUP, QuantizedMatrix

ALICE = "llmviz/data/alice-ch1-2.txt"


@pytest.fixture(scope="module")
def w():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, (128, 96)).astype(np.float32)     # [in, out] as used in x @ W
    a[3, 5] = 1.5                                   # an outlier: its channel / group gets a big scale
    return a


@pytest.fixture(scope="module")
def rows(w):
    return np.ascontiguousarray(w.T)                # [out, in]: the stored orientation


def test_int8_per_channel_error_is_at_most_half_a_step(rows):
    q, scale = quant.quantize_int8_rows(rows)
    assert q.dtype == np.int8 and q.shape == (96, 128) and scale.shape == (96,) and scale.dtype == np.float32
    err = np.abs(quant.dequantize_int8_rows(q, scale) - rows)                 # [out, in]
    assert np.all(err <= scale[:, None] / 2 * (1 + 1e-5))
    assert err.max() > 0                                                      # it is lossy


def expand(scale):
    """[out, in/32] -> [out, in]"""
    return np.repeat(scale, GROUP, axis=1)


def test_int8_groups_error_is_at_most_half_a_step(rows):
    q, scale = quant.quantize_int8_groups(rows)
    assert scale.shape == (96, 128 // GROUP)
    err = np.abs(quant.dequantize_int8_groups(q, scale) - rows)
    assert np.all(err <= expand(scale) / 2 * (1 + 1e-5))
    # groups isolate the outlier: only its own group of 32 inputs pays for it
    q_pc, s_pc = quant.quantize_int8_rows(rows)
    err_pc = np.abs(quant.dequantize_int8_rows(q_pc, s_pc) - rows)
    assert err[5, GROUP:].max() < err_pc[5, GROUP:].max()


def test_int4_packs_two_codes_per_byte_in_gguf_order_and_bounds_the_error(rows):
    packed, scale, minimum = quant.quantize_int4(rows)
    assert packed.dtype == np.uint8 and packed.shape == (96, 64) and minimum.shape == scale.shape == (96, 4)
    codes = quant.unpack_int4(packed)
    assert codes.min() == 0 and codes.max() == 15           # each group spans its whole range
    assert np.array_equal(quant.pack_int4(codes), packed)
    # GGUF Q4_1 block order: byte j holds element j (low nibble) and element j + 16 (high nibble)
    assert packed[0, 1] == codes[0, 1] | (codes[0, 17] << 4)
    err = np.abs(quant.dequantize_int4(packed, scale, minimum) - rows)
    assert np.all(err <= expand(scale) / 2 * (1 + 1e-5) + 1e-7)
    assert np.allclose(minimum, rows.reshape(96, 4, GROUP).min(axis=2))


def test_int4_sym_uses_codes_minus_8_to_7(rows):
    packed, scale = quant.quantize_int4_sym(rows)
    codes = quant.unpack_int4(packed).astype(int) - 8
    assert codes.min() >= -7 and codes.max() <= 7
    err = np.abs(quant.dequantize_int4_sym(packed, scale) - rows)
    assert np.all(err <= expand(scale) / 2 * (1 + 1e-5))


BITS = {"int8": 8 + 32 / 128, "int8-g32": 8 + 1, "int4": 4 + 2, "int4-sym": 4 + 1}


@pytest.mark.parametrize("kind", ["int8", "int8-g32", "int4", "int4-sym"])
@pytest.mark.parametrize("lead", [(2, 3), (20,)])       # 6 rows: the fused kernel; 20: dequantize + gemm
def test_quantized_matrix_multiplies_like_its_dequantized_array(w, kind, lead, monkeypatch):
    monkeypatch.setattr(quant, "BLOCK_ELEMS", 32 * 128)        # force several blocks of output channels
    qm = QuantizedMatrix.from_float(w, kind)
    x = np.random.default_rng(1).normal(size=lead + (128,)).astype(np.float32)
    y = x @ qm
    assert y.shape == lead + (96,) and y.dtype == np.float32
    np.testing.assert_allclose(y, x @ qm.dequantize(), rtol=1e-4, atol=1e-5)
    ids = np.array([[0, 95], [7, 7]])
    np.testing.assert_allclose(qm.T[ids], qm.dequantize().T[ids], rtol=1e-6)
    assert qm.T[ids].shape == (2, 2, 128)
    assert qm.bits_per_weight == pytest.approx(BITS[kind])


def test_every_format_has_a_label():
    assert quant.KINDS == ("fp32", "int8", "int8-g32", "int4")          # the app's choices
    assert set(quant.LABELS) == set(quant.FORMATS) >= set(quant.KINDS) and all(quant.LABELS.values())


def test_unknown_kind_is_refused(real_model):
    with pytest.raises(ValueError, match="unknown quantization"):
        quant.quantize_model(real_model, "int3")


@pytest.fixture(scope="module")
def quantized(real_model):
    return {k: quant.quantize_model(real_model, k, log=lambda *a: None) for k in ("int8", "int4")}


def test_weight_memory_shrinks(real_model, quantized):
    fp32 = real_model.nbytes
    assert quantized["int8"].nbytes == pytest.approx(fp32 / 4, rel=0.02)      # 8 bits + a scale per column
    assert quantized["int4"].nbytes == pytest.approx(fp32 * 6 / 32, rel=0.02)  # 4 bits + 2 float32 per 32
    assert quantized["int8"].quantization == "int8" and real_model.quantization == "fp32"
    assert quantized["int8"].tokenizer is real_model.tokenizer


@pytest.mark.parametrize("kind", quant.FORMATS)
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
    assert i8["mean_kl"] < 0.01 and i8["top1_agreement"] > 0.9
    assert i8["mean_kl"] < i4["mean_kl"] < 0.6 and i4["top1_agreement"] < i8["top1_agreement"] + 1e-9
    assert i8["perplexity"] == pytest.approx(res["ref"]["perplexity"], rel=0.05)
    assert res["ref"]["tokens"] == 128


def test_int8_model_generates_the_same_greedy_answer(real_model, quantized):
    r = llmviz.generate(quantized["int8"], "The capital of France is", max_new_tokens=2, trace=True)
    assert r.text == " Paris."
    assert r.trace.summary()["model"]["quantization"] == "int8"
    assert r.trace.steps[-1].logits.dtype == np.float32


def test_load_model_quantizes(real_model):
    m = llmviz.load_model(quantization="int4")
    assert m.quantization == "int4" and m.nbytes < real_model.nbytes / 5


def test_int4_reproduces_the_files_4_bit_weights(real_model, quantized):
    """The file stores the layers as GGUF Q4_1 (scale and minimum per 32 weights), so the "fp32"
    weights are 4-bit values expanded: int4 finds the same grid and gives them back; the
    symmetric int4-sym rounds them again onto other levels."""
    w = np.asarray(real_model.weights["layers.3.ffn.w_down"])
    back = quantized["int4"].weights["layers.3.ffn.w_down"].dequantize()
    assert np.abs(back - w).max() < 1e-6
    sym = QuantizedMatrix.from_float(w, "int4-sym").dequantize()
    assert np.abs(sym - w).max() > 0.01
