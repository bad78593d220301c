"""Read a llama-architecture GGUF file into llmviz's canonical float32 weights.

Format: the GGUF spec (ggml docs/gguf.md). Parsing and block dequantization
(Q4_0, Q4_1, Q8_0, Q4_K, F16, F32, ...) are done by the `gguf` package from the
llama.cpp project. What is llama.cpp-specific and undone here:

The result is llmviz/forward.py's canonical weights (lm_head [D, V]); names and shapes are
checked first (llmviz/tensors.py).

* ggml stores a matrix with ne = [in, out]; the reader hands it to NumPy as
  [out, in] (PyTorch's Linear layout). We transpose to [in, out] for `x @ W`.
* convert_hf_to_gguf.py permutes the rows of attn_q / attn_k so that ggml's
  interleaved RoPE can be used: w.reshape(n_head, 2, d/2, D).swapaxes(1, 2).
  We apply the inverse so the HF "rotate_half" RoPE in ops.py is correct.
"""
import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from .config import ModelConfig
from .tensors import check_tensors

CONTROL_TOKEN = 3  # llama.cpp token type for special tokens like <|im_start|>


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def unpermute(w, n_head):
    """Inverse of llama.cpp's permute(). w [out, in] -> [out, in]"""
    out, inp = w.shape
    return w.reshape(n_head, out // n_head // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


def read_config(reader) -> ModelConfig:
    arch = field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"GGUF architecture {arch!r} is not supported (only 'llama'); "
                         "GPT-2 models load from a Hugging Face directory.")
    n_heads = int(field(reader, "llama.attention.head_count"))
    names = {t.name for t in reader.tensors}
    emb = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if emb is None:
        raise ValueError("GGUF file has no tensor 'token_embd.weight'")
    return ModelConfig(
        arch="llama",
        n_layers=int(field(reader, "llama.block_count")),
        n_heads=n_heads,
        n_kv_heads=int(field(reader, "llama.attention.head_count_kv", n_heads)),
        d_model=int(field(reader, "llama.embedding_length")),
        d_ff=int(field(reader, "llama.feed_forward_length")),
        vocab_size=int(emb.shape[1]),
        context_length=int(field(reader, "llama.context_length")),
        norm_eps=float(field(reader, "llama.attention.layer_norm_rms_epsilon")),
        rope_theta=float(field(reader, "llama.rope.freq_base", 10000.0)),
        tied_embeddings="output.weight" not in names,
    )


def read_tensor(t) -> np.ndarray:
    """One tensor, dequantized to float32, in NumPy's [out, in] order."""
    if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        a = np.asarray(t.data)
    else:
        a = dequantize(t.data, t.tensor_type)
    shape = tuple(int(n) for n in reversed(t.shape))  # ggml ne -> NumPy shape
    return np.ascontiguousarray(a.reshape(shape), dtype=np.float32)


def gguf_tensors(cfg: ModelConfig) -> dict:
    """The tensors a llama GGUF must hold -> their shapes in NumPy's [out, in] order."""
    D, F, V, d, H, Hkv = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.d_head, cfg.n_heads, cfg.n_kv_heads
    shapes = {"token_embd.weight": (V, D), "output_norm.weight": (D,)}
    if not cfg.tied_embeddings:
        shapes["output.weight"] = (V, D)
    for i in range(cfg.n_layers):
        p = f"blk.{i}."
        shapes.update({p + "attn_norm.weight": (D,), p + "ffn_norm.weight": (D,),
                       p + "attn_q.weight": (H * d, D), p + "attn_k.weight": (Hkv * d, D),
                       p + "attn_v.weight": (Hkv * d, D), p + "attn_output.weight": (D, H * d),
                       p + "ffn_gate.weight": (F, D), p + "ffn_up.weight": (F, D), p + "ffn_down.weight": (D, F)})
    return shapes


def load_weights(reader, cfg: ModelConfig) -> dict:
    """Checks names and shapes before dequantizing anything, then converts: [out, in] -> [in, out]
    for x @ W, q/k rows unpermuted, q/k/v and gate/up concatenated."""
    raw = {t.name: t for t in reader.tensors}
    check_tensors({n: tuple(int(k) for k in reversed(t.shape)) for n, t in raw.items()}, gguf_tensors(cfg),
                  "GGUF file")

    def get(name):
        return read_tensor(raw[name])

    def t(a):                                            # [out, in] -> [in, out]
        return np.ascontiguousarray(a.T)

    H, Hkv = cfg.n_heads, cfg.n_kv_heads
    w = {"tok_emb": get("token_embd.weight")}                                            # [V, D]
    for i in range(cfg.n_layers):
        p, q = f"blk.{i}.", f"layers.{i}."
        wq = unpermute(get(p + "attn_q.weight"), H)
        wk = unpermute(get(p + "attn_k.weight"), Hkv)
        w[q + "attn_norm.w"] = get(p + "attn_norm.weight")
        w[q + "attn.wqkv"] = t(np.concatenate([wq, wk, get(p + "attn_v.weight")]))     # [D, (H+2Hkv)d]
        w[q + "attn.wo"] = t(get(p + "attn_output.weight"))                            # [Hd, D]
        w[q + "ffn_norm.w"] = get(p + "ffn_norm.weight")
        w[q + "ffn.w_gate_up"] = t(np.concatenate([get(p + "ffn_gate.weight"), get(p + "ffn_up.weight")]))  # [D, 2F]
        w[q + "ffn.w_down"] = t(get(p + "ffn_down.weight"))                            # [F, D]
    w["final_norm.w"] = get("output_norm.weight")
    w["lm_head"] = w["tok_emb"].T if cfg.tied_embeddings else t(get("output.weight"))  # [D, V]
    return w


def tokenizer_spec(reader) -> dict:
    """What tokenizer.py needs to rebuild the BPE tokenizer: tokens, merges, special ids."""
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    return {
        "model": field(reader, "tokenizer.ggml.model"),
        "pre": field(reader, "tokenizer.ggml.pre", "default"),
        "tokens": list(tokens),
        "merges": list(field(reader, "tokenizer.ggml.merges", [])),
        "special_ids": [i for i, t in enumerate(types) if t == CONTROL_TOKEN],
        "bos_id": field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_id": field(reader, "tokenizer.ggml.eos_token_id"),
        "chat_template": field(reader, "tokenizer.chat_template"),
    }


def load(path):
    """-> (ModelConfig, weights dict, tokenizer spec, file type summary)"""
    reader = GGUFReader(str(path))
    cfg = read_config(reader)
    kinds = sorted({t.tensor_type.name for t in reader.tensors})
    return cfg, load_weights(reader, cfg), tokenizer_spec(reader), {"file_types": kinds}
