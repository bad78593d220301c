"""A Step as bytes, for the shared run store (llmviz/web/redis_store.py): pack_step() and
unpack_step(). No pickle: reading a packed step runs no code.
"""
import dataclasses
import json

import numpy as np

from llmviz.trace import Step

# One packed step = MAGIC, a 4-byte little-endian length, a JSON header, then the bytes of every
# array of the step. The header holds the Step's fields (whatever fields the dataclass has), each
# array replaced by a placeholder (its number, dtype and shape) and a layout entry per array
# (stored dtype, offset, count of non-zeros if stored sparse). Floating arrays are stored as
# float16 when every value fits (attention probabilities, activations: 3 significant digits are
# plenty for a picture). Steps packed while the sampling distribution was stored hold it sparse
# (positions + values): unpack_step still reads them; pack_step no longer writes any. Deflate on
# top was measured and left out: 11% smaller for ~15 ms more CPU per step than packing takes
# (~0.5 ms, done for every step of every run).
#
# Left out: the step's full logits and its sampling distribution ([V] floats each, 40% of a decode
# step's bytes and of its packing time). No endpoint reads them from a stored run: what the page
# shows of them (the top tokens, their probabilities, the draw) is in the step's summary, stored
# next to it. A step read back has None in their place.
#
# A recording made in every layer ("layers.<i>.<name>", the same shape in each) is stored as one
# array "layers.*.<name>" [L, ...]: a decode step then packs ~6 arrays instead of ~125, which
# cuts its packing time by a quarter (the per-array work is Python, the bytes are few).

MAGIC = b"LLMVIZ-STEP-1\n"


def stored_part(step: Step) -> Step:
    """The step as stored: without its full logits and sampling distribution, layers stacked (see above)."""
    return dataclasses.replace(step, logits=None, sampling={**step.sampling, "probs": None},
                               rec=stacked_layers(step.rec) if step.rec else step.rec)


def stacked_layers(rec: dict) -> dict:
    """{"layers.<i>.<name>": [...]} for i = 0 .. L-1, all of one shape -> {"layers.*.<name>": [L, ...]}."""
    groups = {}
    for key, a in rec.items():
        head, layer, name = (key.split(".", 2) + ["", ""])[:3]
        if head == "layers" and layer.isdigit() and isinstance(a, np.ndarray):
            groups.setdefault(name, {})[int(layer)] = a
    out = dict(rec)
    for name, layers in groups.items():
        arrays = [layers.get(i) for i in range(len(layers))]
        if any(a is None for a in arrays) or len({(a.shape, a.dtype) for a in arrays}) > 1:
            continue                                      # not one per layer from 0, or shapes differ: as it is
        for i in range(len(arrays)):
            del out[f"layers.{i}.{name}"]
        out[f"layers.*.{name}"] = np.stack(arrays)
    return out


def unstacked_layers(rec: dict) -> dict:
    """The inverse of stacked_layers."""
    out = {}
    for key, a in rec.items():
        if key.startswith("layers.*."):
            out.update({f"layers.{i}.{key[9:]}": layer for i, layer in enumerate(a)})
        else:
            out[key] = a
    return out


def split_arrays(value, arrays: list):
    """A JSON-able copy of `value` with every ndarray appended to `arrays` (and a placeholder left)."""
    if isinstance(value, np.ndarray):
        arrays.append(value)
        return {"__array__": len(arrays) - 1, "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, dict):
        return {k: split_arrays(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [split_arrays(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def join_arrays(value, arrays):
    if isinstance(value, dict):
        if "__array__" in value:
            return arrays[value["__array__"]]
        return {k: join_arrays(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [join_arrays(v, arrays) for v in value]
    return value


def float_bytes(arrays) -> list:
    """The floating arrays' values as float16 (float32 if any finite value would overflow float16),
    one cast for all of them. -> a flat array per input array (None for non-floating ones)."""
    floats = [a.ravel() for a in arrays if a.dtype.kind == "f"]
    if not floats:
        return [None] * len(arrays)
    flat32 = np.concatenate(floats).astype(np.float32, copy=False)
    flat = flat32.astype(np.float16)
    if not np.isfinite(flat).all() and not np.array_equal(np.isfinite(flat), np.isfinite(flat32)):
        flat = flat32                                                 # a finite value overflowed float16
    out, offset = [], 0
    for a in arrays:
        if a.dtype.kind == "f":
            out.append(flat[offset:offset + a.size])
            offset += a.size
        else:
            out.append(None)
    return out


def pack_step(step: Step) -> bytes:
    """Every field of the Step dataclass -> bytes (see above)."""
    arrays, step = [], stored_part(step)
    fields = {f.name: split_arrays(getattr(step, f.name), arrays) for f in dataclasses.fields(step)}
    parts, layout, offset = [], [], 0
    for a, small in zip(arrays, float_bytes(arrays)):
        stored = small if small is not None else np.ascontiguousarray(a).ravel()
        parts.append(stored.tobytes())
        layout.append([stored.dtype.str, offset, None])
        offset += len(parts[-1])
    header = json.dumps({"fields": fields, "layout": layout}).encode()
    return MAGIC + len(header).to_bytes(4, "little") + header + b"".join(parts)


def unpack_step(blob: bytes) -> Step:
    if not blob.startswith(MAGIC):
        raise ValueError("not a packed llmviz step")
    n = int.from_bytes(blob[len(MAGIC):len(MAGIC) + 4], "little")
    header = json.loads(blob[len(MAGIC) + 4:len(MAGIC) + 4 + n])
    raw = memoryview(blob)[len(MAGIC) + 4 + n:]
    arrays = []
    for placeholder, (stored, offset, nonzero) in zip(array_placeholders(header["fields"]), header["layout"]):
        shape, dtype = placeholder["shape"], np.dtype(placeholder["dtype"])
        size = int(np.prod(shape)) if shape else 1
        if nonzero is None:
            a = np.frombuffer(raw, np.dtype(stored), size, offset).astype(dtype)   # a writable float32 copy
        else:
            where = np.frombuffer(raw, "<u4", nonzero, offset)
            a = np.zeros(size, dtype)
            a[where] = np.frombuffer(raw, np.dtype(stored), nonzero, offset + 4 * nonzero)
        arrays.append(a.reshape(shape))
    known = {f.name for f in dataclasses.fields(Step)}
    step = Step(**{k: join_arrays(v, arrays) for k, v in header["fields"].items() if k in known})
    return dataclasses.replace(step, rec=unstacked_layers(step.rec)) if step.rec else step


def array_placeholders(value) -> list:
    """The array placeholders in `value`, in the order split_arrays numbered them."""
    found = []
    if isinstance(value, dict):
        if "__array__" in value:
            return [value]
        for v in value.values():
            found += array_placeholders(v)
    elif isinstance(value, list):
        for v in value:
            found += array_placeholders(v)
    return sorted(found, key=lambda p: p["__array__"])
