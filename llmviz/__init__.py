"""llmviz: a NumPy LLM that records every intermediate, and a page that shows them."""
from .generate import Generation, GenerationResult, generate
from .model import Model, load_model

__all__ = ["Generation", "GenerationResult", "Model", "generate", "load_model"]
