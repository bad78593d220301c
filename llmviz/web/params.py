"""Turning a request body into Generation settings, with messages a person can act on.

`parse_generate(body, ...)` is the single place request fields are read and
checked; a stricter validator can replace it without touching the endpoints.
"""
from .errors import ApiError
from .registry import QUANTIZATIONS, SPECULATIVE_SOURCES

MAX_PROMPT_CHARS = 4000
MAX_NEW_TOKENS = 256
MAX_BATCH_PROMPTS = 8


def bad(field, message):
    return ApiError(400, message, field)


def number(body, field, default, lo, hi, kind=float, optional=False):
    value = body.get(field, default)
    if value is None or value == "":
        if optional:
            return None
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(field, f"{field} must be a number, not {type(value).__name__}")
    if kind is int and float(value) != int(value):
        raise bad(field, f"{field} must be a whole number")
    if not lo <= value <= hi:
        raise bad(field, f"{field} must be between {lo} and {hi} (got {value})")
    return kind(value)


def flag(body, field, default):
    value = body.get(field, default)
    if not isinstance(value, bool):
        raise bad(field, f"{field} must be true or false")
    return value


def prompt_text(value, field="prompt"):
    if not isinstance(value, str) or not value.strip():
        raise bad(field, f"{field} must be a non-empty string of text")
    if len(value) > MAX_PROMPT_CHARS:
        raise bad(field, f"{field} is {len(value)} characters; the limit is {MAX_PROMPT_CHARS}")
    return value


def parse_generate(body, features: dict, vocab_size: int) -> dict:
    """JSON body -> settings dict (see docs/api.md for the fields). Raises ApiError(400)."""
    if not isinstance(body, dict):
        raise bad(None, "the request body must be a JSON object, e.g. {\"prompt\": \"Hello\"}")
    out = {"prompt": prompt_text(body.get("prompt"))}
    out["chat"] = flag(body, "chat", False)
    out["max_new_tokens"] = number(body, "max_new_tokens", 24, 1, MAX_NEW_TOKENS, int)
    out["temperature"] = number(body, "temperature", 0.0, 0.0, 2.0)
    out["top_k"] = number(body, "top_k", None, 1, vocab_size, int, optional=True)
    out["top_p"] = number(body, "top_p", None, 0.01, 1.0, optional=True)
    out["seed"] = number(body, "seed", None, 0, 2 ** 31 - 1, int, optional=True)
    out["kv_cache"] = flag(body, "kv_cache", True)

    quant = body.get("quantization") or "fp32"
    if quant not in QUANTIZATIONS:
        raise bad("quantization", f"quantization must be one of {', '.join(QUANTIZATIONS)} (got {quant!r})")
    if quant not in features["quantization"]["options"]:
        raise bad("quantization", f"{quant} is not available: {features['quantization']['reason']}")
    out["quantization"] = quant

    spec = body.get("speculative") or None
    if spec is not None:
        if spec not in SPECULATIVE_SOURCES:
            raise bad("speculative", f"speculative must be null or one of {', '.join(SPECULATIVE_SOURCES)}")
        if not features["speculative"]["available"]:
            raise bad("speculative", f"speculative decoding is not available: {features['speculative']['reason']}")
    out["speculative"] = spec
    out["num_draft_tokens"] = number(body, "num_draft_tokens", 4, 1, 8, int)

    forced = body.get("forced_ids", [])
    if not isinstance(forced, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in forced):
        raise bad("forced_ids", "forced_ids must be a list of token ids (whole numbers)")
    if any(not 0 <= i < vocab_size for i in forced):
        raise bad("forced_ids", f"every forced id must be between 0 and {vocab_size - 1}")
    if len(forced) > out["max_new_tokens"]:
        raise bad("forced_ids", "forced_ids cannot be longer than max_new_tokens")
    out["forced_ids"] = forced
    return out


def parse_batch(body, features: dict, vocab_size: int) -> dict:
    """Like parse_generate, with `prompts` (a list of 2..8 strings) instead of `prompt`."""
    if not isinstance(body, dict):
        raise bad(None, "the request body must be a JSON object")
    prompts = body.get("prompts")
    if not isinstance(prompts, list) or not 1 <= len(prompts) <= MAX_BATCH_PROMPTS:
        raise bad("prompts", f"prompts must be a list of 1 to {MAX_BATCH_PROMPTS} strings")
    checked = [prompt_text(p, "prompts") for p in prompts]
    out = parse_generate({**body, "prompt": checked[0], "forced_ids": []}, features, vocab_size)
    out["prompts"] = checked
    return out
