"""The models a server offers, one per quantization, each loaded once and shared.

Models are read-only after loading, so requests share them freely; only loading
and quantizing are guarded by the lock.
"""
import threading

import llmviz

from .facts import QUANTIZATIONS


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
