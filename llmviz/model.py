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
from .tokenizer import Tokenizer

CACHE_FORMAT = 1  # bump when the canonical weight layout changes


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
        """Bytes of weights as stored (a tied unembedding counted once)."""
        seen, total = set(), 0
        for name, w in self.weights.items():
            # a view (lm_head = tok_emb.T, or a quantized embedding's transpose) counts through its base
            view = name == "lm_head" or not isinstance(w, np.ndarray)
            base = w.base if view and getattr(w, "base", None) is not None else w
            if id(base) in seen:
                continue
            seen.add(id(base))
            total += base.nbytes
        return total

    def logits(self, ids) -> np.ndarray:
        """Full forward without reusing a cache. [T] -> [T, V] float32"""
        from .forward import KVCache, forward
        ids = np.asarray(ids, dtype=np.int64)
        cache = KVCache(self.config, len(ids))
        return forward(self, ids[None], [cache], all_logits=True)[0]


def source_key(path: Path) -> str:
    st = path.stat() if path.is_file() else max((p.stat() for p in path.iterdir()), key=lambda s: s.st_mtime_ns)
    raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CACHE_FORMAT}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def save_cache(folder: Path, cfg: ModelConfig, weights: dict, tok_spec: dict, info: dict):
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, a in weights.items():
        if name == "lm_head" and cfg.tied_embeddings:
            continue
        np.save(tmp / f"{name}.npy", a)
    meta = {"config": cfg.to_dict(), "tokenizer": tok_spec, "info": info}
    (tmp / "meta.json").write_text(json.dumps(meta))
    try:
        os.rename(tmp, folder)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)


def read_cache(folder: Path):
    meta = json.loads((folder / "meta.json").read_text())
    c = meta["config"]
    cfg = ModelConfig(**{k: v for k, v in c.items() if k not in ("d_head", "position_kind")})
    weights = {p.stem: np.load(p, mmap_mode="r") for p in folder.glob("*.npy")}
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
        save_cache(folder, cfg, weights, tok_spec, info)
    cfg, weights, tok_spec, info = read_cache(folder)
    weights["lm_head"] = (weights["tok_emb"] if cfg.tied_embeddings else weights["lm_head"]).T  # [D, V] view
    model = Model(name=name, source=str(path), config=cfg, weights=weights,
                  tokenizer=Tokenizer(tok_spec), info=info)
    if quantization != "fp32":
        from .quant import quantize_model
        model = quantize_model(model, quantization)
    model.info["load_seconds"] = round(time.perf_counter() - t0, 3)
    return model
