"""Read a Hugging Face model directory (config.json, model.safetensors, tokenizer.json).

Two architectures:
Both return the canonical weights of llmviz/forward.py (lm_head [D, V]), after checking the
tensor names and shapes (llmviz/tensors.py).

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
from .tensors import check_tensors


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


def safetensors_header(f: Path) -> dict:
    """The JSON header of a .safetensors file: a u64 length, then the JSON (the format's spec)."""
    with f.open("rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        return json.loads(fh.read(n))


def read_bf16_file(f: Path) -> dict:
    """NumPy has no bfloat16, so safetensors' NumPy loader refuses it. The format is
    a u64 header length, a JSON header, then raw little-endian data; bf16 is the top
    half of a float32, so widening is a 16-bit shift."""
    raw = f.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = memoryview(raw)[8 + n:]
    dtypes = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] not in dtypes:
            raise ValueError(f"{f.name}: tensor {name!r} has dtype {t['dtype']}, expected BF16, F16 or F32")
        lo, hi = t["data_offsets"]
        a = np.frombuffer(data[lo:hi], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
        out[name] = (a.astype(np.uint32) << 16).view(np.float32) if t["dtype"] == "BF16" else a
    return out


def read_tensors(path: Path) -> dict:
    """Every tensor of every .safetensors file; bf16 files (the header says so) are widened here."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{path} has no .safetensors file")
    raw = {}
    for f in files:
        bf16 = any(t["dtype"] == "BF16" for k, t in safetensors_header(f).items() if k != "__metadata__")
        raw.update(read_bf16_file(f) if bf16 else load_file(str(f)))
    return raw


def gpt2_tensors(cfg: ModelConfig) -> dict:
    """The tensors a GPT-2 checkpoint must hold (the hub's names) -> their shapes."""
    D, F, V = cfg.d_model, cfg.d_ff, cfg.vocab_size
    shapes = {"wte.weight": (V, D), "wpe.weight": (cfg.context_length, D), "ln_f.weight": (D,), "ln_f.bias": (D,)}
    for i in range(cfg.n_layers):
        p = f"h.{i}."
        shapes.update({p + "ln_1.weight": (D,), p + "ln_1.bias": (D,), p + "ln_2.weight": (D,), p + "ln_2.bias": (D,),
                       p + "attn.c_attn.weight": (D, 3 * D), p + "attn.c_attn.bias": (3 * D,),
                       p + "attn.c_proj.weight": (D, D), p + "attn.c_proj.bias": (D,),
                       p + "mlp.c_fc.weight": (D, F), p + "mlp.c_fc.bias": (F,),
                       p + "mlp.c_proj.weight": (F, D), p + "mlp.c_proj.bias": (D,)})
    return shapes


def gpt2_weights(raw: dict, cfg: ModelConfig) -> dict:
    """GPT-2's Conv1D weights are already [in, out]: no transpose, only new names."""
    # accept both hub names ("h.0...") and save_pretrained names ("transformer.h.0...")
    raw = {k.removeprefix("transformer."): v for k, v in raw.items()}
    check_tensors({k: a.shape for k, a in raw.items()}, gpt2_tensors(cfg), "checkpoint", unused={"lm_head.weight"})

    def get(name):
        return np.ascontiguousarray(raw[name], dtype=np.float32)

    w = {"tok_emb": get("wte.weight"), "pos_emb": get("wpe.weight")}
    for i in range(cfg.n_layers):
        p, q = f"h.{i}.", f"layers.{i}."
        w[q + "attn_norm.w"], w[q + "attn_norm.b"] = get(p + "ln_1.weight"), get(p + "ln_1.bias")
        w[q + "attn.wqkv"], w[q + "attn.bqkv"] = get(p + "attn.c_attn.weight"), get(p + "attn.c_attn.bias")
        w[q + "attn.wo"], w[q + "attn.bo"] = get(p + "attn.c_proj.weight"), get(p + "attn.c_proj.bias")
        w[q + "ffn_norm.w"], w[q + "ffn_norm.b"] = get(p + "ln_2.weight"), get(p + "ln_2.bias")
        w[q + "ffn.w_up"], w[q + "ffn.b_up"] = get(p + "mlp.c_fc.weight"), get(p + "mlp.c_fc.bias")
        w[q + "ffn.w_down"], w[q + "ffn.b_down"] = get(p + "mlp.c_proj.weight"), get(p + "mlp.c_proj.bias")
    w["final_norm.w"], w["final_norm.b"] = get("ln_f.weight"), get("ln_f.bias")
    w["lm_head"] = w["tok_emb"].T   # [D, V]: GPT-2 ties the unembedding to the token embedding
    return w


def llama_tensors(cfg: ModelConfig) -> dict:
    """The tensors a Llama checkpoint must hold -> their shapes (nn.Linear: [out, in])."""
    D, F, V, d, H, Hkv = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.d_head, cfg.n_heads, cfg.n_kv_heads
    shapes = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    if not cfg.tied_embeddings:
        shapes["lm_head.weight"] = (V, D)
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
                       p + "self_attn.q_proj.weight": (H * d, D), p + "self_attn.k_proj.weight": (Hkv * d, D),
                       p + "self_attn.v_proj.weight": (Hkv * d, D), p + "self_attn.o_proj.weight": (D, H * d),
                       p + "mlp.gate_proj.weight": (F, D), p + "mlp.up_proj.weight": (F, D),
                       p + "mlp.down_proj.weight": (D, F)})
    return shapes


def llama_weights(raw: dict, cfg: ModelConfig) -> dict:
    """nn.Linear weights are [out, in]: each is transposed to [in, out] for x @ W;
    q, k, v are concatenated into one matrix, and gate and up into another."""
    check_tensors({k: a.shape for k, a in raw.items()}, llama_tensors(cfg), "checkpoint", unused={"lm_head.weight"})

    def get(name):
        return np.asarray(raw[name], dtype=np.float32)

    def cat_t(*names):                                   # [out_1 + out_2 + ..., in] -> [in, out_1 + ...]
        return np.ascontiguousarray(np.concatenate([get(n) for n in names]).T)

    w = {"tok_emb": np.ascontiguousarray(get("model.embed_tokens.weight"))}          # [V, D]
    for i in range(cfg.n_layers):
        p, q = f"model.layers.{i}.", f"layers.{i}."
        w[q + "attn_norm.w"] = get(p + "input_layernorm.weight")
        w[q + "attn.wqkv"] = cat_t(*(p + f"self_attn.{x}_proj.weight" for x in "qkv"))    # [D, (H+2Hkv)d]
        w[q + "attn.wo"] = cat_t(p + "self_attn.o_proj.weight")                          # [Hd, D]
        w[q + "ffn_norm.w"] = get(p + "post_attention_layernorm.weight")
        w[q + "ffn.w_gate_up"] = cat_t(p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight")  # [D, 2F]
        w[q + "ffn.w_down"] = cat_t(p + "mlp.down_proj.weight")                          # [F, D]
    w["final_norm.w"] = get("model.norm.weight")
    w["lm_head"] = w["tok_emb"].T if cfg.tied_embeddings else cat_t("lm_head.weight")  # [D, V]
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
