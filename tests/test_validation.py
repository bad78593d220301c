"""Bad input to the API gets a 4xx in the one JSON error shape, with a message naming the field
and the allowed range, and the server keeps serving (issue 5)."""
import json

import pytest

from llmviz.web.validation import GENERATE_FIELDS, Limits

LIMITS = Limits()
V = 49152                              # SmolLM2's vocabulary
OPTIONS = ", ".join(GENERATE_FIELDS)


def post(client, body=None, data=None, content_type="application/json", url="/api/generate"):
    if body is not None:
        data = json.dumps(body)
    return client.post(url, data=data, content_type=content_type)


def assert_error(response, status, field, message):
    """The API's error shape, exactly; `message` is the whole text, or its start when it ends in '...'."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "message", "field"}
    assert body["error"]["status"] == status
    assert body["error"]["field"] == field
    if message.endswith("..."):
        assert body["error"]["message"].startswith(message[:-3]), body["error"]["message"]
    else:
        assert body["error"]["message"] == message


# -- the body -------------------------------------------------------------------------

BODIES = [
    # (raw data, content type, status, message)
    ('{"prompt": "hi"}', "text/plain", 415,
     "send the body as JSON with Content-Type: application/json (got text/plain)"),
    ("prompt=hi", "application/x-www-form-urlencoded", 415,
     "send the body as JSON with Content-Type: application/json (got application/x-www-form-urlencoded)"),
    ('{"prompt": "hi"}', None, 415, "send the body as JSON with Content-Type: application/json (got no content type)"),
    ("", "application/json", 400,
     'the request body is empty; send a JSON object such as {"prompt": "The quick brown fox"}'),
    ('{"prompt": ', "application/json", 400, "the request body is not valid JSON (Expecting value: line 1..."),
    ("{'prompt': 'hi'}", "application/json", 400, "the request body is not valid JSON (Expecting property name..."),
    ("[1, 2]", "application/json", 400,
     'the request body must be a JSON object such as {"prompt": "The quick brown fox"}, not a list'),
    ('"hello"', "application/json", 400,
     'the request body must be a JSON object such as {"prompt": "The quick brown fox"}, not a string'),
    ("null", "application/json", 400,
     'the request body must be a JSON object such as {"prompt": "The quick brown fox"}, not null'),
    ('{"prompt": "hi", "temperature": NaN}', "application/json", 400,
     "NaN is not a number JSON allows: send finite numbers only"),
    ('{"prompt": "hi", "temperature": Infinity}', "application/json", 400,
     "Infinity is not a number JSON allows: send finite numbers only"),
    ('{"prompt": "hi", "top_p": -Infinity}', "application/json", 400,
     "-Infinity is not a number JSON allows: send finite numbers only"),
    ('{"prompt": "hi", "temperature": 1e999}', "application/json", 400, "1e999 is too large: numbers must be finite"),
    (b'{"prompt": "\xff\xfe"}', "application/json", 400, "the request body is not valid UTF-8 text"),
    ("[" * 50_000, "application/json", 400, "the request body is nested too deeply to be a generation request"),
    ('{"prompt": "hi", "seed": ' + "9" * 5000 + "}", "application/json", 400,
     "the request body is not valid JSON (Exceeds the limit..."),
]


@pytest.mark.parametrize("data,content_type,status,message", BODIES)
def test_bad_body(client, data, content_type, status, message):
    assert_error(post(client, data=data, content_type=content_type), status, None, message)


def test_body_over_the_size_limit_is_413(client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = post(client, {"prompt": "x" * limit})
    assert_error(response, 413, None, f"the request body is too large (the limit is {limit} bytes)")


# -- fields ---------------------------------------------------------------------------

def whole(field, lo, hi, got):
    return f"{field} must be a whole number from {lo} to {hi} (got {got})"


FIELDS = [
    # (body, field, message)
    ({}, "prompt", 'prompt is missing; send a JSON object such as {"prompt": "The quick brown fox"}'),
    ({"prompt": 42}, "prompt", "prompt must be a string of text, not a number"),
    ({"prompt": None}, "prompt", "prompt must be a string of text, not null"),
    ({"prompt": ["hi"]}, "prompt", "prompt must be a string of text, not a list"),
    ({"prompt": ""}, "prompt", "prompt is empty; type some text to start from"),
    ({"prompt": " \n\t "}, "prompt", "prompt is empty; type some text to start from"),
    ({"prompt": "a\x00b"}, "prompt", "prompt contains a NUL character (\\u0000), which is not text"),
    ({"prompt": "a\ud800b"}, "prompt",
     'prompt contains an unpaired surrogate ("\\ud800"), which is not valid Unicode text'),
    ({"prompt": "hi", "max_new_tokens": 0}, "max_new_tokens", whole("max_new_tokens", 1, 256, 0)),
    ({"prompt": "hi", "max_new_tokens": -5}, "max_new_tokens", whole("max_new_tokens", 1, 256, -5)),
    ({"prompt": "hi", "max_new_tokens": 257}, "max_new_tokens", whole("max_new_tokens", 1, 256, 257)),
    ({"prompt": "hi", "max_new_tokens": 2.5}, "max_new_tokens", whole("max_new_tokens", 1, 256, 2.5)),
    ({"prompt": "hi", "max_new_tokens": 10 ** 30}, "max_new_tokens",
     whole("max_new_tokens", 1, 256, 10 ** 30)),
    ({"prompt": "hi", "max_new_tokens": "5"}, "max_new_tokens",
     'max_new_tokens must be a whole number from 1 to 256, not a string ("5")'),
    ({"prompt": "hi", "max_new_tokens": True}, "max_new_tokens",
     "max_new_tokens must be a whole number from 1 to 256, not true or false (true)"),
    ({"prompt": "hi", "temperature": -0.1}, "temperature", "temperature must be a number from 0 to 2.0 (got -0.1)"),
    ({"prompt": "hi", "temperature": 1e6}, "temperature",
     "temperature must be a number from 0 to 2.0 (got 1000000.0)"),
    ({"prompt": "hi", "temperature": False}, "temperature",
     "temperature must be a number from 0 to 2.0, not true or false (false)"),
    ({"prompt": "hi", "top_k": 0}, "top_k", whole("top_k", 1, V, 0)),
    ({"prompt": "hi", "top_k": V + 1}, "top_k", whole("top_k", 1, V, V + 1)),
    ({"prompt": "hi", "top_p": 0}, "top_p", "top_p must be a number above 0 and at most 1 (got 0)"),
    ({"prompt": "hi", "top_p": 1.5}, "top_p", "top_p must be a number above 0 and at most 1 (got 1.5)"),
    ({"prompt": "hi", "top_p": -0.2}, "top_p", "top_p must be a number above 0 and at most 1 (got -0.2)"),
    ({"prompt": "hi", "seed": -1}, "seed", whole("seed", 0, 2 ** 31 - 1, -1)),
    ({"prompt": "hi", "seed": 2 ** 31}, "seed", whole("seed", 0, 2 ** 31 - 1, 2 ** 31)),
    ({"prompt": "hi", "num_draft_tokens": 0}, "num_draft_tokens", whole("num_draft_tokens", 1, 8, 0)),
    ({"prompt": "hi", "kv_cache": "yes"}, "kv_cache", 'kv_cache must be true or false, not "yes"'),
    ({"prompt": "hi", "chat": 1}, "chat", "chat must be true or false, not 1"),
    ({"prompt": "hi", "forced_ids": [-1]}, "forced_ids",
     f"forced_ids must be a list of token ids, whole numbers from 0 to {V - 1}"),
    ({"prompt": "hi", "forced_ids": [True]}, "forced_ids",
     f"forced_ids must be a list of token ids, whole numbers from 0 to {V - 1}"),
    ({"prompt": "hi", "forced_ids": "1,2"}, "forced_ids",
     f"forced_ids must be a list of token ids, whole numbers from 0 to {V - 1}"),
    ({"prompt": "hi", "max_new_tokens": 1, "forced_ids": [1, 2]}, "forced_ids",
     "forced_ids has 2 ids; it cannot be longer than max_new_tokens (1)"),
    # options that do not exist, and attempts to choose the model
    ({"prompt": "hi", "temprature": 1}, "temprature", f'unknown option "temprature"; the options are: {OPTIONS}'),
    ({"prompt": "hi", "__class__": {}}, "__class__", f'unknown option "__class__"; the options are: {OPTIONS}'),
    ({"prompt": "hi", "model": "/etc/passwd"}, "model",
     "'model': the model is chosen by the server (LLMVIZ_MODEL_PATH or app.py --model), never by a request; "
     "remove 'model'"),
    ({"prompt": "hi", "model_path": "../../weights.gguf"}, "model_path",
     "'model_path': the model is chosen by the server (LLMVIZ_MODEL_PATH or app.py --model), never by a "
     "request; remove 'model_path'"),
    ({"prompt": "hi", "GGUF": "x.gguf"}, "GGUF",
     "'GGUF': the model is chosen by the server (LLMVIZ_MODEL_PATH or app.py --model), never by a request; "
     "remove 'GGUF'"),
    ({"prompt": "hi", "quantization": "int3"}, "quantization",
     'quantization must be one of fp32, int8, int8-g32, int4 (got "int3")'),
    ({"prompt": "hi", "quantization": "/tmp/model.gguf"}, "quantization",
     'quantization must be one of fp32, int8, int8-g32, int4 (got "/tmp/model.gguf")'),
    ({"prompt": "hi", "speculative": "medusa"}, "speculative",
     'speculative must be null or one of prompt-lookup, early-exit (got "medusa")'),
    ({"prompt": "hi", "speculative": "prompt-lookup", "kv_cache": False}, "speculative",
     "speculative decoding needs kv_cache on (it verifies drafts against the cache)"),
    # a run whose trace would not fit in memory
    ({"prompt": "hi", "max_new_tokens": 256, "kv_cache": False}, "kv_cache",
     "this run would record about 6.0 GB of trace, above the server's limit of 1.0 GB per run; with kv_cache "
     "off every step recomputes and records attention over all positions; turn kv_cache on, or lower "
     "max_new_tokens or shorten the prompt"),
]


@pytest.mark.parametrize("body,field,message", FIELDS, ids=lambda v: str(v)[:40] if isinstance(v, dict) else None)
def test_bad_field(client, body, field, message):
    assert_error(post(client, body), 400, field, message)


def test_prompt_over_the_token_limit_states_the_limit(client, real_model):
    prompt = "The quick brown fox jumps over the lazy dog. " * 60
    n = len(real_model.tokenizer.encode(prompt))
    assert n > LIMITS.max_prompt_tokens
    response = post(client, {"prompt": prompt, "max_new_tokens": 1})
    assert_error(response, 400, "prompt", f"prompt is too long ({n} tokens); the limit is 512 tokens")


def test_limits_come_from_the_app_config_and_are_published(make_app):
    app = make_app(LLMVIZ_MAX_NEW_TOKENS=8, LLMVIZ_MAX_PROMPT_TOKENS=4)
    client = app.test_client()
    assert_error(post(client, {"prompt": "hi", "max_new_tokens": 9}), 400, "max_new_tokens",
                 whole("max_new_tokens", 1, 8, 9))
    assert_error(post(client, {"prompt": "one two three four five"}), 400, "prompt",
                 "prompt is too long (5 tokens); the limit is 4 tokens")
    limits = client.get("/api/model").get_json()["limits"]
    assert limits["max_new_tokens"] == 8 and limits["max_prompt_tokens"] == 4


def test_the_stream_and_batch_endpoints_check_the_same_way(client):
    assert_error(post(client, {"prompt": "hi", "top_p": 0}, url="/api/stream"), 400, "top_p",
                 "top_p must be a number above 0 and at most 1 (got 0)")
    assert_error(post(client, {"prompts": "hi"}, url="/api/batch"), 400, "prompts",
                 "prompts must be a list of 1 to 8 strings")
    assert_error(post(client, {"prompts": ["ok", ""]}, url="/api/batch"), 400, "prompts",
                 "prompts is empty; type some text to start from")


def test_server_still_serves_after_bad_input(client):
    for data, content_type, *_ in BODIES:
        post(client, data=data, content_type=content_type)
    response = post(client, {"prompt": "The capital of France is", "max_new_tokens": 2, "seed": 1})
    assert response.status_code == 200
    assert len(response.get_json()["tokens"]) == 2


def test_valid_values_at_the_edges_are_accepted(client):
    body = {"prompt": "Hi", "max_new_tokens": 1, "temperature": 2.0, "top_k": V, "top_p": 1, "seed": 2 ** 31 - 1,
            "kv_cache": False, "chat": False, "quantization": "fp32", "speculative": None, "forced_ids": [],
            "num_draft_tokens": 8}
    response = post(client, body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["request"]["seed"] == 2 ** 31 - 1


# -- detail endpoints -----------------------------------------------------------------

@pytest.fixture(scope="module")
def run_id(app):
    response = post(app.test_client(), {"prompt": "Hello there", "max_new_tokens": 2, "seed": 0})
    assert response.status_code == 200
    return response.get_json()["id"]


def test_unknown_run_is_404(client):
    assert_error(client.get("/api/runs/nope"), 404, "run", "no run 'nope' on this server; runs live in memory...")
    assert_error(client.get("/api/runs/nope/steps/0/attention/0"), 404, "run", "no run 'nope' on this server...")


def test_unknown_step_and_layer_are_404(client, run_id):
    assert_error(client.get(f"/api/runs/{run_id}/steps/7"), 404, "step",
                 "step 7 does not exist (this run has 2 steps)")
    assert client.get(f"/api/runs/{run_id}/steps/1/attention/0").status_code == 200
    for url in (f"/api/runs/{run_id}/steps/7/attention/0", f"/api/runs/{run_id}/steps/0/attention/30",
                f"/api/runs/{run_id}/steps/0/feedforward/99", f"/api/runs/{run_id}/steps/9/logit-lens"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.get_json()["error"]["status"] == 404


def test_unknown_endpoint_is_404_json(client):
    assert_error(client.get("/api/nothing-here"), 404, None,
                 "there is nothing at GET /api/nothing-here; docs/api.md lists the endpoints")


@pytest.mark.parametrize("kv_cache", [True, False])
def test_trace_estimate_matches_what_a_run_records(real_model, kv_cache):
    """The per-run memory check is only as good as the estimate: pin it to a real trace."""
    import llmviz
    from llmviz.web.limits import trace_nbytes
    from llmviz.web.validation import trace_bytes
    gen = llmviz.Generation(real_model, "The quick brown fox jumps", max_new_tokens=4, trace=True,
                            kv_cache=kv_cache)
    gen.result()
    estimate = trace_bytes(real_model.config, len(gen.prompt_ids), 4, kv_cache)
    actual = trace_nbytes(gen.trace)
    print(f"kv_cache={kv_cache}: estimated {estimate} bytes, recorded {actual}")
    assert actual <= estimate <= 1.2 * actual


@pytest.mark.parametrize("draft", ["prompt-lookup", "early-exit"])
def test_trace_estimate_bounds_a_speculative_run(real_model, draft):
    """A verify pass records every row it checks, so the estimate assumes every draft rejected."""
    import llmviz
    from llmviz.web.limits import trace_nbytes
    from llmviz.web.validation import trace_bytes
    gen = llmviz.Generation(real_model, llmviz.GenerationRequest(
        prompt="The quick brown fox jumps", max_new_tokens=8, trace=True, speculative=draft, num_draft_tokens=4))
    gen.result()
    estimate = trace_bytes(real_model.config, len(gen.prompt_ids), 8, True, draft_tokens=4)
    actual = trace_nbytes(gen.trace)
    print(f"{draft}: estimated {estimate} bytes, recorded {actual}")
    assert actual <= estimate <= 3 * actual


def test_the_default_length_respects_a_lower_limit(make_app):
    client = make_app(LLMVIZ_MAX_NEW_TOKENS=2).test_client()
    response = post(client, {"prompt": "Hello"})
    assert response.status_code == 200 and len(response.get_json()["tokens"]) == 2
