"""Loading a model: pick the loader, cache the dequantized float32 weights on disk.

The first load of a GGUF file dequantizes every tensor (seconds). The result is
written as one .npy file per tensor and memory-mapped on later starts, so a second
start takes well under a second and several server processes share one copy of the
weights in the page cache.
"""
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import load_gguf, load_hf
from .config import ModelConfig
from .fetch import DEFAULT_MODEL_NAME, cache_dir, default_model_path
from .forward import KVCache, forward
from .tokenizer import Tokenizer

CACHE_FORMAT = 2  # bump when the canonical weight layout changes


def storage_owner(a):
    """The array (or quantized matrix) that holds a's bytes, following views (.T, slices)."""
    base = getattr(a, "base", None)
    if isinstance(a, np.ndarray):
        return storage_owner(base) if isinstance(base, np.ndarray) else a
    return storage_owner(base) if base is not None else a


@dataclass
class Model:
    name: str                 # shown on the page, e.g. "SmolLM2-135M-Instruct"
    source: str               # file or directory it came from
    config: ModelConfig
    weights: dict             # canonical name -> float32 array (or quantized matrix); see forward.py
    tokenizer: Tokenizer
    quantization: str = "fp32"
    info: dict = field(default_factory=dict)   # e.g. the source file's tensor types, load time

    @property
    def nbytes(self) -> int:
        """Bytes of weights as stored; arrays sharing storage (a tied embedding and its
        unembedding) count once."""
        owners = {id(o): o for o in map(storage_owner, self.weights.values())}
        return sum(o.nbytes for o in owners.values())

    def logits(self, ids) -> np.ndarray:
        """Full forward without reusing a cache. [T] -> [T, V] float32"""
        ids = np.asarray(ids, dtype=np.int64)
        cache = KVCache(self.config, len(ids))
        return forward(self, ids[None], [cache], all_logits=True)[0]



def parameter_count(model) -> int:
    """Parameters of the network, counting a tied (un)embedding and any shared array once."""
    seen, total = set(), 0
    for name, w in model.weights.items():
        if name == "lm_head" and model.config.tied_embeddings:
            continue
        if id(w) not in seen:
            seen.add(id(w))
            total += int(getattr(w, "size", 0))
    return total


def model_card(model) -> dict:
    """One loaded model, as GET /api/model, the boot JSON, a run's header and `python -m llmviz info`
    show it: defined once, here."""
    cfg = model.config
    return {"name": model.name, "file": model.source.rsplit("/", 1)[-1], "quantization": model.quantization,
            "config": cfg.to_dict(), "weight_bytes": model.nbytes, "kv_bytes_per_token": cfg.kv_bytes_per_token(),
            "file_types": model.info.get("file_types", []), "parameters": parameter_count(model)}


def run_model(model) -> dict:
    """The model card flattened as a run's header carries it: {"name", **config, "quantization", ...}."""
    card = model_card(model)
    return {"name": card["name"], **card["config"],
            **{k: card[k] for k in ("quantization", "weight_bytes", "kv_bytes_per_token")}}


def source_key(path: Path) -> str:
    st = path.stat() if path.is_file() else max((p.stat() for p in path.iterdir()), key=lambda s: s.st_mtime_ns)
    raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CACHE_FORMAT}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def save_cache(folder: Path, cfg: ModelConfig, weights: dict, tok_spec: dict, info: dict):
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, a in weights.items():
        if name == "tok_emb" and cfg.tied_embeddings:
            continue                      # it is lm_head.T: stored once, see read_cache()
        # C order, the one x @ W reads fastest (a tied lm_head [D, V] arrives as a view of tok_emb)
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(a))
    meta = {"config": cfg.to_dict(), "tokenizer": tok_spec, "info": info}
    (tmp / "meta.json").write_text(json.dumps(meta))
    try:
        os.rename(tmp, folder)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_caches(folder: Path):
    """Delete older conversions of the same source file (an earlier CACHE_FORMAT or an
    overwritten file): ~540 MB each. A process still mapping them keeps its mapping."""
    source = json.loads((folder / "meta.json").read_text())["info"].get("source")
    for other in folder.parent.iterdir():
        meta = other / "meta.json"
        if other == folder or not meta.exists():
            continue
        try:
            stale = json.loads(meta.read_text())["info"].get("source", None)
        except (OSError, ValueError):
            continue
        if stale is not None and stale == source:
            shutil.rmtree(other, ignore_errors=True)


def read_cache(folder: Path):
    meta = json.loads((folder / "meta.json").read_text())
    c = meta["config"]
    cfg = ModelConfig(**{k: v for k, v in c.items() if k not in ("d_head", "position_kind")})
    weights = {p.stem: np.load(p, mmap_mode="r") for p in folder.glob("*.npy")}
    if cfg.tied_embeddings:
        weights["tok_emb"] = weights["lm_head"].T                       # [V, D] view of the [D, V] unembedding
    return cfg, weights, meta["tokenizer"], meta["info"]


def load_model(name_or_path=None, quantization="fp32", log=print) -> Model:
    """None -> the default model (downloaded on first use); else a .gguf file or a HF directory."""
    t0 = time.perf_counter()
    name_or_path = name_or_path or os.environ.get("LLMVIZ_MODEL") or None
    if name_or_path is None:
        path, name = default_model_path(log=log), DEFAULT_MODEL_NAME
    else:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"No model at {path}: give a .gguf file or a Hugging Face directory "
                                    "(config.json, model.safetensors, tokenizer.json).")
        name = path.stem if path.is_file() else path.name

    folder = cache_dir() / "weights" / f"{name}-{source_key(path)}"
    if not (folder / "meta.json").exists():
        log(f"llmviz: converting {path.name} to float32 (first load only) ...")
        loader = load_gguf if path.is_file() else load_hf
        cfg, weights, tok_spec, info = loader.load(path)
        save_cache(folder, cfg, weights, tok_spec, {**info, "source": str(path.resolve())})
        remove_stale_caches(folder)
    cfg, weights, tok_spec, info = read_cache(folder)
    model = Model(name=name, source=str(path), config=cfg, weights=weights,
                  tokenizer=Tokenizer(tok_spec), info=info)
    if quantization != "fp32":
        from .quant import quantize_model
        model = quantize_model(model, quantization, log=log)
    model.info["load_seconds"] = round(time.perf_counter() - t0, 3)
    return model
