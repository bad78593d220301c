"""The models a server offers, one per quantization, each loaded once and shared.

Models are read-only after loading, so requests share them freely; only loading
and quantizing are guarded by the lock. What the engine can do (quantization,
speculative decoding, batching) is discovered at request time, so the page's
toggles light up as soon as those engine modules exist.
"""
import dataclasses
import importlib.util
import threading

import llmviz

QUANTIZATIONS = ("fp32", "int8", "int4")
SPECULATIVE_SOURCES = ("prompt-lookup", "early-exit")


def has_module(name) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def features() -> dict:
    """Which optimizations the installed engine supports, with a reason when not."""
    gen_params = {f.name for f in dataclasses.fields(llmviz.GenerationRequest)}
    quant = has_module("llmviz.quant")
    spec = "speculative" in gen_params
    batch = hasattr(llmviz, "generate_batch") or has_module("llmviz.batching")
    return {
        "kv_cache": {"available": True},
        "quantization": {"available": quant, "options": list(QUANTIZATIONS) if quant else ["fp32"],
                         "reason": None if quant else "the engine's quantization module (llmviz.quant) "
                                                      "is not installed yet"},
        "speculative": {"available": spec, "sources": list(SPECULATIVE_SOURCES) if spec else [],
                        "reason": None if spec else "this engine's Generation has no speculative decoding yet"},
        "batching": {"available": batch, "scheduler": has_module("llmviz.scheduler"),
                     "reason": None if batch else "this engine has no batched generation yet"},
    }


class ModelRegistry:
    def __init__(self, path=None, preloaded=None):
        self.path = path
        self._models = {"fp32": preloaded} if preloaded is not None else {}
        self._lock = threading.Lock()

    def get(self, quantization="fp32"):
        """The model for a quantization name, loaded (or quantized from fp32) on first use."""
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {quantization!r}")
        with self._lock:
            if "fp32" not in self._models:
                self._models["fp32"] = llmviz.load_model(self.path)
            if quantization not in self._models:
                from llmviz.quant import quantize_model
                self._models[quantization] = quantize_model(self._models["fp32"], quantization)
            return self._models[quantization]

    def loaded(self) -> list:
        with self._lock:
            return list(self._models)

    def warm_up(self):
        """Touch every weight page once (they are memory-mapped) with a short traced run:
        a prefill of several tokens and one decode step, the two shapes a visitor's run takes."""
        model = self.get("fp32")
        llmviz.generate(model, "The quick brown fox", max_new_tokens=2, trace=True)
