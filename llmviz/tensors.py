"""Checking a checkpoint before converting it: every expected tensor present, none unknown,
every shape as the config says (the key-set check of nanoGPT's `GPT.from_pretrained`).

Errors are exceptions, not asserts (`python -O` removes asserts), and name the tensor with
its expected and found shapes.
"""

# Buffers some checkpoints carry that are not weights: GPT-2's causal-mask buffers and the
# rotary inverse frequencies of older Llama checkpoints (recomputed from rope_theta here).
BUFFERS = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


def check_tensors(found: dict, expected: dict, where: str, unused=()):
    """found, expected: tensor name -> shape. Raises ValueError on the first problem.
    unused: names a checkpoint may hold that are not needed (e.g. a tied lm_head.weight)."""
    missing = [name for name in expected if name not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{where} has no tensor {missing[0]!r}, expected shape {expected[missing[0]]}{more}")
    unknown = sorted(n for n in found if n not in expected and n not in unused and not n.endswith(BUFFERS))
    if unknown:
        raise ValueError(f"{where} has tensors this model does not use: {', '.join(unknown[:5])}"
                         + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""))
    for name, shape in expected.items():
        if tuple(found[name]) != tuple(shape):
            raise ValueError(f"{where}: tensor {name!r} has shape {tuple(found[name])}, expected {tuple(shape)}")
