"""The fused dequantize-and-multiply kernels (llmviz/kernels.py) against the reference they
replace: dequantize to float32, then multiply with NumPy. Tolerances are relative to the
largest output, and the largest difference is printed on failure (llm.c's check_tensor)."""
import threading

import numpy as np
import pytest

import llmviz
from llmviz import kernels, quant
from llmviz.quant import QuantizedMatrix

KINDS = ["int8", "int8-g32", "int4", "int4-sym"]


def fused(qm, x):
    """x [N, in] @ qm through the fused kernel, whatever the row count."""
    x = np.ascontiguousarray(x, np.float32)
    return kernels.launch(qm.kind, x, qm.arrays(), np.empty((x.shape[0], qm.shape[1]), np.float32))


def assert_close(y, ref, rel=1e-4):
    scale = np.abs(ref).max()
    diff = np.abs(y - ref).max()
    assert diff <= rel * scale, f"max |difference| {diff:.3g} > {rel} x max |reference| {scale:.3g}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_in, n_out", [(32, 1), (96, 7), (160, 33), (1536, 130)])
@pytest.mark.parametrize("n_rows", [1, 3, 16])
def test_kernel_equals_dequantize_then_multiply(kind, n_in, n_out, n_rows):
    rng = np.random.default_rng(n_in + n_out + n_rows)
    w = rng.normal(0, 0.05, (n_in, n_out)).astype(np.float32)
    w[rng.integers(n_in), rng.integers(n_out)] = 1.0              # an outlier, as in real layers
    qm = QuantizedMatrix.from_float(w, kind)
    x = rng.normal(size=(n_rows, n_in)).astype(np.float32)
    assert_close(fused(qm, x), x @ qm.dequantize())


@pytest.fixture(scope="module")
def activations(real_model):
    """Real inputs of the first layer's matrices: the normed embeddings of a short text."""
    ids = real_model.tokenizer.encode("Alice was beginning to get very tired of sitting by her sister")
    return np.asarray(real_model.weights["tok_emb"][ids[:5]], np.float32)     # [5, D]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["layers.0.attn.wqkv", "layers.29.ffn.w_gate_up", "lm_head"])
def test_kernel_on_real_layers(real_model, activations, kind, name):
    qm = QuantizedMatrix.from_float(real_model.weights[name], kind)
    assert_close(fused(qm, activations), activations @ qm.dequantize())


def test_kernel_on_the_real_down_projection(real_model):
    qm = QuantizedMatrix.from_float(real_model.weights["layers.7.ffn.w_down"], "int4")   # in = 1536
    x = np.random.default_rng(0).normal(size=(2, 1536)).astype(np.float32)
    assert_close(fused(qm, x), x @ qm.dequantize())


@pytest.mark.parametrize("kind", KINDS)
def test_a_row_in_a_batch_gets_the_same_result_as_alone(kind):
    """Under batching, each request must see exactly what it would alone."""
    rng = np.random.default_rng(2)
    qm = QuantizedMatrix.from_float(rng.normal(0, 0.05, (576, 200)).astype(np.float32), kind)
    x = rng.normal(size=(quant.FUSED_MAX_ROWS[kind], 576)).astype(np.float32)
    batch = x @ qm
    for r in range(len(x)):
        assert np.array_equal(x[r] @ qm, batch[r])


def test_threads_can_run_kernels_at_the_same_time():
    """The server runs generations on several threads; the kernels release the GIL."""
    rng = np.random.default_rng(3)
    qm = QuantizedMatrix.from_float(rng.normal(0, 0.05, (576, 3000)).astype(np.float32), "int4")
    xs = rng.normal(size=(4, 576)).astype(np.float32)
    results = [None] * 4

    def work(i):
        for _ in range(20):
            results[i] = xs[i] @ qm
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert_close(results[i], xs[i] @ qm.dequantize())


@pytest.mark.parametrize("kind", KINDS)
def test_many_rows_take_the_blocked_path_with_the_same_result(kind):
    rng = np.random.default_rng(4)
    qm = QuantizedMatrix.from_float(rng.normal(0, 0.05, (96, 70)).astype(np.float32), kind)
    x = rng.normal(size=(quant.FUSED_MAX_ROWS[kind] + 5, 96)).astype(np.float32)
    assert_close(x @ qm, fused(qm, x))


def test_int8_greedy_output_equals_the_dequantized_reference(real_model):
    """The fused int8 model and the same weights expanded to float32 (BLAS) choose the same tokens."""
    int8 = quant.quantize_model(real_model, "int8", log=lambda *a: None)
    reference = quant.dequantize_model(int8)
    assert reference.info["dequantized_from"] == "int8"
    prompt = "The three most important inventions of the 20th century are"
    fused_ids = llmviz.generate(int8, prompt, max_new_tokens=16).token_ids
    ref_ids = llmviz.generate(reference, prompt, max_new_tokens=16).token_ids
    assert fused_ids == ref_ids


def test_a_kernel_is_compiled_or_loaded_once_per_process():
    lines = []
    kernels.warm_up("int8", log=lines.append)
    before = list(lines)
    assert kernels.warm_up("int8", log=lines.append) == 0.0 and lines == before
