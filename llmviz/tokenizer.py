"""Byte-level BPE tokenizers (Sennrich et al. 2016; GPT-2's byte-level variant), built
with the `tokenizers` library either from a Hugging Face tokenizer.json or from the
tokens, merges and token types stored in a GGUF file.

No BOS token is added implicitly: SmolLM2's own Hugging Face tokenizer adds none.
"""
from functools import lru_cache

from tokenizers import AddedToken, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer


@lru_cache(maxsize=1)
def byte_decoder() -> dict:
    """GPT-2's printable-unicode-char -> byte table (inverse of bytes_to_unicode)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def from_gguf_spec(spec: dict) -> HFTokenizer:
    if spec["model"] != "gpt2":
        raise ValueError(f"GGUF tokenizer model {spec['model']!r} is not supported (only byte-level BPE 'gpt2')")
    vocab = {tok: i for i, tok in enumerate(spec["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in spec["merges"]]
    tk = HFTokenizer(models.BPE(vocab=vocab, merges=merges))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if spec["pre"] == "smollm":  # llama.cpp's "smollm" pre-tokenizer: every digit on its own, then GPT-2's regex
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tk.pre_tokenizer = byte_level
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(spec["tokens"][i], special=True, normalized=False) for i in spec["special_ids"]])
    return tk


class Tokenizer:
    def __init__(self, spec: dict):
        self.hf = HFTokenizer.from_str(spec["tokenizer_json"]) if "tokenizer_json" in spec else from_gguf_spec(spec)
        self.chat_template = spec.get("chat_template")
        self.special_ids = {i for i, t in self.hf.get_added_tokens_decoder().items() if t.special}
        self.vocab_size = self.hf.get_vocab_size()
        stop_names = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>")
        self.eos_ids = {i for name in stop_names if (i := self.hf.token_to_id(name)) is not None}
        if spec.get("eos_id") is not None and spec.get("eos_id") != spec.get("bos_id"):
            self.eos_ids.add(int(spec["eos_id"]))

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=False)

    def piece(self, token_id: int) -> str:
        """The exact text of one token. Bytes that are not valid UTF-8 on their own
        (half of a multi-byte character) are shown as <0xE6>."""
        tok = self.hf.id_to_token(int(token_id))
        if tok is None:
            return f"<unk:{token_id}>"
        if token_id in self.special_ids:
            return tok
        table = byte_decoder()
        if not all(ch in table for ch in tok):
            return self.decode([token_id])
        raw = bytes(table[ch] for ch in tok)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "".join(f"<0x{b:02X}>" for b in raw)

    def is_special(self, token_id: int) -> bool:
        return int(token_id) in self.special_ids

    def apply_chat_template(self, user_message: str) -> str:
        """The prompt text an instruct model expects for one user turn (ChatML for SmolLM2)."""
        if self.chat_template is None:
            return user_message
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        tpl = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(self.chat_template)
        return tpl.render(messages=[{"role": "user", "content": user_message}], add_generation_prompt=True,
                          bos_token="", eos_token="")
