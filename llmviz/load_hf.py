"""Read a Hugging Face model directory (config.json, model.safetensors, tokenizer.json).

Two architectures:
* GPT2LMHeadModel. Its Conv1D weights are already [in, out], so no transpose.
  The hub's openai-community/gpt2 names tensors `h.0.attn.c_attn.weight`, while
  save_pretrained() writes `transformer.h.0...`: both are accepted.
* LlamaForCausalLM. nn.Linear weights are [out, in]: transposed to [in, out].
  HF checkpoints keep q/k in rotate_half order, so (unlike GGUF) no permutation.
"""
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from .config import ModelConfig


def read_config(path: Path) -> ModelConfig:
    c = json.loads((path / "config.json").read_text())
    archs = c.get("architectures") or [c.get("model_type", "")]
    kind = c.get("model_type") or archs[0]
    if kind == "gpt2" or "GPT2" in archs[0]:
        D = c["n_embd"]
        if c.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"GPT-2 activation {c['activation_function']!r} is not supported (only gelu_new)")
        return ModelConfig(arch="gpt2", n_layers=c["n_layer"], n_heads=c["n_head"], n_kv_heads=c["n_head"],
                           d_model=D, d_ff=c.get("n_inner") or 4 * D, vocab_size=c["vocab_size"],
                           context_length=c["n_positions"], norm_eps=c.get("layer_norm_epsilon", 1e-5),
                           tied_embeddings=True)
    if kind == "llama" or "Llama" in archs[0]:
        H = c["num_attention_heads"]
        if c.get("head_dim", c["hidden_size"] // H) != c["hidden_size"] // H:
            raise ValueError("Llama models with head_dim != hidden_size / heads are not supported")
        rope = c.get("rope_parameters") or c.get("rope_scaling") or {}    # transformers 5 / 4 spelling
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            raise ValueError(f"Llama models with rope scaling {rope.get('rope_type')!r} are not supported")
        return ModelConfig(arch="llama", n_layers=c["num_hidden_layers"], n_heads=H,
                           n_kv_heads=c.get("num_key_value_heads", H), d_model=c["hidden_size"],
                           d_ff=c["intermediate_size"], vocab_size=c["vocab_size"],
                           context_length=c.get("max_position_embeddings", 2048),
                           norm_eps=c.get("rms_norm_eps", 1e-6),
                           rope_theta=c.get("rope_theta", rope.get("rope_theta", 10000.0)),
                           tied_embeddings=bool(c.get("tie_word_embeddings", False)))
    raise ValueError(f"{path}: model type {kind!r} is not supported (only gpt2 and llama)")


def read_bf16_file(f: Path) -> dict:
    """NumPy has no bfloat16, so safetensors' NumPy loader refuses it. The format is
    a u64 header length, a JSON header, then raw little-endian data; bf16 is the top
    half of a float32, so widening is a 16-bit shift."""
    raw = f.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        dtype = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32}[t["dtype"]]
        a = np.frombuffer(data[lo:hi], dtype=dtype).reshape(t["shape"])
        out[name] = (a.astype(np.uint32) << 16).view(np.float32) if t["dtype"] == "BF16" else a
    return out


def read_tensors(path: Path) -> dict:
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{path} has no .safetensors file")
    raw = {}
    for f in files:
        try:
            raw.update(load_file(str(f)))
        except (TypeError, ValueError, KeyError):
            raw.update(read_bf16_file(f))
    return raw


def gpt2_weights(raw: dict, cfg: ModelConfig) -> dict:
    # accept both hub names ("h.0...") and save_pretrained names ("transformer.h.0...")
    raw = {k.removeprefix("transformer."): v for k, v in raw.items()}

    def get(name, shape):
        if name not in raw:
            raise ValueError(f"checkpoint has no tensor {name!r}")
        a = np.ascontiguousarray(raw[name], dtype=np.float32)
        assert a.shape == shape, f"{name}: expected {shape}, got {a.shape}"
        return a

    D, F, V = cfg.d_model, cfg.d_ff, cfg.vocab_size
    w = {"tok_emb": get("wte.weight", (V, D)), "pos_emb": get("wpe.weight", (cfg.context_length, D))}
    for i in range(cfg.n_layers):
        p, q = f"h.{i}.", f"layers.{i}."
        w[q + "attn_norm.w"], w[q + "attn_norm.b"] = get(p + "ln_1.weight", (D,)), get(p + "ln_1.bias", (D,))
        w[q + "attn.wqkv"] = get(p + "attn.c_attn.weight", (D, 3 * D))
        w[q + "attn.bqkv"] = get(p + "attn.c_attn.bias", (3 * D,))
        w[q + "attn.wo"], w[q + "attn.bo"] = get(p + "attn.c_proj.weight", (D, D)), get(p + "attn.c_proj.bias", (D,))
        w[q + "ffn_norm.w"], w[q + "ffn_norm.b"] = get(p + "ln_2.weight", (D,)), get(p + "ln_2.bias", (D,))
        w[q + "ffn.w_up"], w[q + "ffn.b_up"] = get(p + "mlp.c_fc.weight", (D, F)), get(p + "mlp.c_fc.bias", (F,))
        w[q + "ffn.w_down"] = get(p + "mlp.c_proj.weight", (F, D))
        w[q + "ffn.b_down"] = get(p + "mlp.c_proj.bias", (D,))
    w["final_norm.w"], w["final_norm.b"] = get("ln_f.weight", (D,)), get("ln_f.bias", (D,))
    w["lm_head"] = w["tok_emb"]  # GPT-2 ties the unembedding to the token embedding
    return w


def llama_weights(raw: dict, cfg: ModelConfig) -> dict:
    def get(name, shape):
        if name not in raw:
            raise ValueError(f"checkpoint has no tensor {name!r}")
        a = np.asarray(raw[name], dtype=np.float32)
        assert a.shape == shape, f"{name}: expected {shape}, got {a.shape}"
        return a

    D, F, V, d = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.d_head
    H, Hkv = cfg.n_heads, cfg.n_kv_heads
    w = {"tok_emb": np.ascontiguousarray(get("model.embed_tokens.weight", (V, D)))}
    for i in range(cfg.n_layers):
        p, q = f"model.layers.{i}.", f"layers.{i}."
        wq = get(p + "self_attn.q_proj.weight", (H * d, D))
        wk = get(p + "self_attn.k_proj.weight", (Hkv * d, D))
        wv = get(p + "self_attn.v_proj.weight", (Hkv * d, D))
        w[q + "attn_norm.w"] = get(p + "input_layernorm.weight", (D,))
        w[q + "attn.wqkv"] = np.ascontiguousarray(np.concatenate([wq, wk, wv]).T)       # [D, (H+2Hkv)d]
        w[q + "attn.wo"] = np.ascontiguousarray(get(p + "self_attn.o_proj.weight", (D, H * d)).T)
        w[q + "ffn_norm.w"] = get(p + "post_attention_layernorm.weight", (D,))
        gate, up = get(p + "mlp.gate_proj.weight", (F, D)), get(p + "mlp.up_proj.weight", (F, D))
        w[q + "ffn.w_gate_up"] = np.ascontiguousarray(np.concatenate([gate, up]).T)     # [D, 2F]
        w[q + "ffn.w_down"] = np.ascontiguousarray(get(p + "mlp.down_proj.weight", (D, F)).T)
    w["final_norm.w"] = get("model.norm.weight", (D,))
    w["lm_head"] = w["tok_emb"] if cfg.tied_embeddings else np.ascontiguousarray(get("lm_head.weight", (V, D)))
    return w


def tokenizer_spec(path: Path) -> dict:
    f = path / "tokenizer.json"
    if not f.exists():
        raise ValueError(f"{path} has no tokenizer.json")
    spec = {"tokenizer_json": f.read_text()}
    tc, jinja = path / "tokenizer_config.json", path / "chat_template.jinja"
    if tc.exists():
        spec["chat_template"] = json.loads(tc.read_text()).get("chat_template")
    if jinja.exists():  # transformers >= 4.50 saves the template beside the config
        spec["chat_template"] = jinja.read_text()
    return spec


def load(path):
    """-> (ModelConfig, weights dict, tokenizer spec, file type summary)"""
    path = Path(path)
    cfg = read_config(path)
    raw = read_tensors(path)
    kinds = sorted({str(a.dtype) for a in raw.values()})
    w = gpt2_weights(raw, cfg) if cfg.arch == "gpt2" else llama_weights(raw, cfg)
    return cfg, w, tokenizer_spec(path), {"file_types": kinds}
