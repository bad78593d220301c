"""Model configuration: one dataclass for both architecture families.

Shape legend used in comments throughout llmviz:
    B  batch rows              T  tokens in this forward call
    S  keys in the KV cache    D  model width (d_model)
    H  query heads             Hkv key/value heads (GQA: H % Hkv == 0)
    d  head size (D // H)      F  feed-forward width
    V  vocabulary size         L  layers
"""
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelConfig:
    arch: str                 # "llama" (RMSNorm, RoPE, GQA, SwiGLU) or "gpt2" (LayerNorm, learned positions, GELU)
    n_layers: int             # L, transformer blocks
    n_heads: int              # H, query heads
    n_kv_heads: int           # Hkv, key/value heads (== H for GPT-2)
    d_model: int              # D, residual stream width
    d_ff: int                 # F, hidden width of the feed-forward block
    vocab_size: int           # V
    context_length: int       # longest sequence the model was trained for
    norm_eps: float           # epsilon inside RMSNorm / LayerNorm
    rope_theta: float = 10000.0   # RoPE base frequency (llama only)
    tied_embeddings: bool = True  # unembedding is the token embedding matrix transposed

    @property
    def d_head(self) -> int:  # d
        return self.d_model // self.n_heads

    @property
    def position_kind(self) -> str:
        return "rope" if self.arch == "llama" else "learned"

    def kv_bytes_per_token(self) -> int:
        """fp32 bytes the KV cache grows by per token: K and V, every layer and kv-head."""
        return 2 * self.n_layers * self.n_kv_heads * self.d_head * 4

    def to_dict(self) -> dict:
        return {**asdict(self), "d_head": self.d_head, "position_kind": self.position_kind}
