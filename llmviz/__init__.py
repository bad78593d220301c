"""llmviz: a NumPy LLM that records every intermediate, and a page that shows them."""
from .batching import generate_batch
from .generate import Generation, GenerationRequest, GenerationResult, generate
from .model import Model, load_model
from .scheduler import Scheduler

__all__ = ["Generation", "GenerationRequest", "GenerationResult", "Model", "Scheduler", "generate", "generate_batch",
           "load_model"]
