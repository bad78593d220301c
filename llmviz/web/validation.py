"""Checking generation requests before any work is done: one pure function per endpoint.

`generate_settings(content_type, data, model, limits)` turns the raw
body of POST /api/generate (and /api/stream) into the settings `api.new_run`
uses, or raises an ApiError whose message names the field and the allowed range.
`batch_settings` does the same for POST /api/batch. Nothing here touches the
request, the app or global state, so the tests call these functions directly
as well as through the test client.

The limits are server settings (`Limits.from_config(app.config)`); the ranges and
defaults of every field are stated once in `facts.fields`, which the page reads
(boot JSON, GET /api/model) for its form. So is the model: a request can never name
a model or a file to load.
"""
import json
import math
from dataclasses import asdict, dataclass

from .errors import ApiError
from .facts import REQUEST_FIELDS, fields


@dataclass(frozen=True)
class Limits:
    max_prompt_tokens: int = 512            # tokens in a prompt, as the model's tokenizer counts them
    max_new_tokens: int = 256               # tokens generated per run
    max_temperature: float = 2.0            # beyond 2 the distribution is close to uniform: nothing to see
    max_seed: int = 2 ** 31 - 1             # seeds stay exact as JavaScript numbers
    max_draft_tokens: int = 8               # speculative decoding: tokens drafted per step
    max_batch_prompts: int = 8              # prompts in one POST /api/batch
    max_trace_bytes: int = 1 << 30          # estimated trace size of one run (attention grows as T x S)

    CONFIG_KEYS = {"max_prompt_tokens": "LLMVIZ_MAX_PROMPT_TOKENS", "max_new_tokens": "LLMVIZ_MAX_NEW_TOKENS",
                   "max_temperature": "LLMVIZ_MAX_TEMPERATURE", "max_seed": "LLMVIZ_MAX_SEED",
                   "max_draft_tokens": "LLMVIZ_MAX_DRAFT_TOKENS", "max_batch_prompts": "LLMVIZ_MAX_BATCH_PROMPTS",
                   "max_trace_bytes": "LLMVIZ_MAX_TRACE_BYTES"}

    @classmethod
    def from_config(cls, config) -> "Limits":
        return cls(**{f: config[k] for f, k in cls.CONFIG_KEYS.items() if config.get(k) is not None})

    def to_json(self) -> dict:
        return asdict(self)


# the options a generation request may carry (docs/api.md describes each)
GENERATE_FIELDS = REQUEST_FIELDS
BATCH_FIELDS = ("prompts",) + GENERATE_FIELDS      # the page may send its usual fields; `prompts` wins
# names a client might use to pick weights; answered with why that is not possible
MODEL_FIELDS = ("model", "model_path", "model_name", "path", "file", "filename", "weights", "checkpoint",
                "gguf", "repo", "repo_id", "hf_repo", "url")
EXAMPLE = '{"prompt": "The quick brown fox"}'


def bad(field, message, status=400):
    return ApiError(status, message, field)


def shown(value) -> str:
    """A request value as JSON, shortened, for an error message."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the body -------------------------------------------------------------------------

def reject_constant(name):
    raise bad(None, f"{name} is not a number JSON allows: send finite numbers only")


def finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise bad(None, f"{text[:20]} is too large: numbers must be finite")
    return value


def decode_body(content_type, data: bytes) -> dict:
    """Raw body -> the JSON object, or a 415/400 saying what is wrong with it."""
    mimetype = (content_type or "").split(";")[0].strip().lower()
    if mimetype != "application/json":
        raise bad(None, f"send the body as JSON with Content-Type: application/json "
                        f"(got {mimetype or 'no content type'})", 415)
    if not data.strip():
        raise bad(None, f"the request body is empty; send a JSON object such as {EXAMPLE}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad(None, "the request body is not valid UTF-8 text") from None
    try:
        body = json.loads(text, parse_constant=reject_constant, parse_float=finite_float)
    except RecursionError:
        raise bad(None, "the request body is nested too deeply to be a generation request") from None
    except ValueError as e:          # JSONDecodeError, or an integer with thousands of digits
        raise bad(None, f"the request body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise bad(None, f"the request body must be a JSON object such as {EXAMPLE}, not {json_type(body)}")
    return body


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}[type(value)]


# -- single fields --------------------------------------------------------------------

def check_fields(body: dict, allowed):
    for key in body:
        if key.lower() in MODEL_FIELDS:
            raise bad(key, f"{key!r}: the model is chosen by the server (LLMVIZ_MODEL_PATH or "
                           f"app.py --model), never by a request; remove {key!r}")
        if key not in allowed:
            raise bad(key, f"unknown option {shown(key)}; the options are: {', '.join(allowed)}")


def text(value, field, limits, count_tokens) -> tuple:
    """A prompt -> (the prompt, its length in tokens)."""
    if not isinstance(value, str):
        raise bad(field, f"{field} must be a string of text, not {json_type(value)}")
    if not value.strip():
        raise bad(field, f"{field} is empty; type some text to start from")
    if "\x00" in value:
        raise bad(field, f"{field} contains a NUL character (\\u0000), which is not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise bad(field, f"{field} contains an unpaired surrogate ({shown(value[e.start])}), which is not "
                         "valid Unicode text") from None
    n = count_tokens(value)          # the body size limit (MAX_CONTENT_LENGTH) bounds this work
    if n > limits.max_prompt_tokens:
        raise bad(field, f"{field} is too long ({n} tokens); the limit is {limits.max_prompt_tokens} tokens")
    return value, n


def whole(body, field, spec, optional=False):
    """An integer field in [spec min, spec max]; null (or absent) means the spec's default."""
    value = body.get(field)
    if value is None or (optional and value == ""):
        return spec["default"]
    lo, hi = spec["min"], spec["max"]
    rng = f"a whole number from {lo} to {hi}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(field, f"{field} must be {rng}, not {json_type(value)} ({shown(value)})")
    if isinstance(value, float) and not value.is_integer():
        raise bad(field, f"{field} must be {rng} (got {shown(value)})")
    if not lo <= value <= hi:
        raise bad(field, f"{field} must be {rng} (got {shown(value)})")
    return int(value)


def real(body, field, spec, optional=False):
    """A number in [min, max] (or (min, max] when the spec says min_exclusive); null means the default."""
    value = body.get(field)
    if value is None or (optional and value == ""):
        return spec["default"]
    lo, hi, lo_open = spec["min"], spec["max"], spec.get("min_exclusive", False)
    rng = f"a number {'above' if lo_open else 'from'} {lo} {'and at most' if lo_open else 'to'} {hi}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(field, f"{field} must be {rng}, not {json_type(value)} ({shown(value)})")
    if not (lo < value if lo_open else lo <= value) or not value <= hi:
        raise bad(field, f"{field} must be {rng} (got {shown(value)})")
    return float(value)


def flag(body, field, spec) -> bool:
    value = body.get(field)
    if value is None:
        return spec["default"]
    if not isinstance(value, bool):
        raise bad(field, f"{field} must be true or false, not {shown(value)}")
    return value


def choice(body, field, spec):
    value = body.get(field)
    if value is None or value == "":
        return spec["default"]
    allowed = ("null or " if spec.get("nullable") else "") + "one of " + ", ".join(spec["choices"])
    if not isinstance(value, str) or value not in spec["choices"]:
        raise bad(field, f"{field} must be {allowed} (got {shown(value)})")
    return value


def token_ids(body, field, spec, max_len):
    value = body.get(field)
    if value is None:
        return spec["default"]
    lo, hi = spec["min"], spec["max"]
    if (not isinstance(value, list)
            or not all(isinstance(i, int) and not isinstance(i, bool) and lo <= i <= hi for i in value)):
        raise bad(field, f"{field} must be a list of token ids, whole numbers from {lo} to {hi}")
    if len(value) > max_len:
        raise bad(field, f"{field} has {len(value)} ids; it cannot be longer than max_new_tokens ({max_len})")
    return value


# -- cost -----------------------------------------------------------------------------

def trace_bytes(cfg, prompt_tokens: int, new_tokens: int, kv_cache: bool, draft_tokens: int = 0) -> int:
    """Estimated bytes the trace of one run records (float32 arrays kept per step, see trace.py).

    Each step keeps the attention probabilities of every layer and head, [L, H, T, S], plus
    the logits and final probabilities [V], and per layer the feed-forward activations [R, F]
    and residual vectors [R, D] of the R rows it keeps. With the KV cache a decode step computes
    one row (T = 1); without it every step recomputes all T = S rows, so the trace grows with
    the cube of the length. A speculative step (draft_tokens = γ) verifies γ + 1 rows, keeps
    them all (R = T), and may emit only one token: the estimate assumes every draft rejected.
    """
    L, H, V, D, F = cfg.n_layers, cfg.n_heads, cfg.vocab_size, cfg.d_model, cfg.d_ff
    total = 0
    for s in range(new_tokens):
        S = prompt_tokens + s                                  # keys seen by a step that adds one token
        verify = s > 0 and kv_cache and draft_tokens > 0
        T, keys, R = (1 + draft_tokens, S + draft_tokens, 1 + draft_tokens) if verify else \
                     (S if (s == 0 or not kv_cache) else 1, S, 1)
        total += 4 * (L * H * T * keys + L * (R * (F + D) + T) + 2 * V + 2 * T * D)
    return total


def gigabytes(n) -> str:
    return f"{n / 2 ** 30:.1f} GB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MB"


# -- whole requests -------------------------------------------------------------------

def options(body, model, limits, prompt_tokens: list) -> dict:
    """The fields every generation request shares; prompt_tokens: token counts of its prompts."""
    cfg = model.config
    spec = fields(cfg, limits)
    out = {"chat": flag(body, "chat", spec["chat"])}
    out["max_new_tokens"] = whole(body, "max_new_tokens", spec["max_new_tokens"])
    out["temperature"] = real(body, "temperature", spec["temperature"])
    out["top_k"] = whole(body, "top_k", spec["top_k"], optional=True)
    out["top_p"] = real(body, "top_p", spec["top_p"], optional=True)
    out["seed"] = whole(body, "seed", spec["seed"], optional=True)
    out["kv_cache"] = flag(body, "kv_cache", spec["kv_cache"])
    out["quantization"] = choice(body, "quantization", spec["quantization"])
    out["speculative"] = choice(body, "speculative", spec["speculative"])
    out["num_draft_tokens"] = whole(body, "num_draft_tokens", spec["num_draft_tokens"])
    if out["speculative"] and not out["kv_cache"]:
        raise bad("speculative", "speculative decoding needs kv_cache on (it verifies drafts against the cache)")

    for n in prompt_tokens:
        if n + out["max_new_tokens"] > cfg.context_length:
            raise bad("max_new_tokens", f"the prompt ({n} tokens) plus max_new_tokens ({out['max_new_tokens']}) "
                                        f"exceeds the model's context of {cfg.context_length} tokens")
    drafts = out["num_draft_tokens"] if out["speculative"] else 0
    cost = sum(trace_bytes(cfg, n, out["max_new_tokens"], out["kv_cache"], drafts) for n in prompt_tokens)
    if cost > limits.max_trace_bytes:
        why = ("with kv_cache off every step recomputes and records attention over all positions; "
               "turn kv_cache on, or " if not out["kv_cache"] else "")
        raise bad("kv_cache" if not out["kv_cache"] else "max_new_tokens",
                  f"this run would record about {gigabytes(cost)} of trace, above the server's limit of "
                  f"{gigabytes(limits.max_trace_bytes)} per run; {why}lower max_new_tokens or shorten the prompt")
    return out


def generate_settings(content_type, data: bytes, model, limits: Limits) -> dict:
    """Body of POST /api/generate or /api/stream -> settings for api.new_run. Raises ApiError."""
    body = decode_body(content_type, data)
    check_fields(body, GENERATE_FIELDS)
    if "prompt" not in body:
        raise bad("prompt", f"prompt is missing; send a JSON object such as {EXAMPLE}")
    prompt, n = text(body["prompt"], "prompt", limits, lambda s: len(model.tokenizer.encode(s)))
    out = {"prompt": prompt, **options(body, model, limits, [n])}
    if out["speculative"] and body.get("forced_ids"):
        raise bad("forced_ids", "forced_ids cannot be combined with speculative decoding")
    spec = fields(model.config, limits)["forced_ids"]
    out["forced_ids"] = token_ids(body, "forced_ids", spec, out["max_new_tokens"])
    return out


def batch_settings(content_type, data: bytes, model, limits: Limits) -> dict:
    """Body of POST /api/batch: like generate_settings with `prompts` (1 to max_batch_prompts strings)."""
    body = decode_body(content_type, data)
    check_fields(body, BATCH_FIELDS)
    prompts, spec = body.get("prompts"), fields(model.config, limits)["prompts"]
    if not isinstance(prompts, list) or not spec["min"] <= len(prompts) <= spec["max"]:
        raise bad("prompts", f"prompts must be a list of {spec['min']} to {spec['max']} strings")
    checked = [text(p, "prompts", limits, lambda s: len(model.tokenizer.encode(s))) for p in prompts]
    out = options(body, model, limits, [n for _, n in checked])
    if body.get("forced_ids"):
        raise bad("forced_ids", "forced_ids applies to one prompt; a batch cannot force tokens")
    return {"prompt": checked[0][0], "prompts": [p for p, _ in checked], **out, "forced_ids": []}
