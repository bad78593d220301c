"""Property-based: whatever a client sends to POST /api/generate, the answer is 2xx or 4xx in the
JSON error shape, never a 5xx, and the server still generates afterwards (issue 5).

The app gets small limits (2 new tokens, 32-token prompts) so that the random bodies that happen
to be valid generate quickly.
"""
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from llmviz.web.validation import GENERATE_FIELDS, MODEL_FIELDS

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)

# near-valid values per field, so the fuzzer reaches every check (and sometimes a real generation)
near = {
    "prompt": st.text(max_size=30) | st.sampled_from(["Hello", "  ", "\x00", "<img src=x onerror=alert(1)>"]),
    "max_new_tokens": st.integers(-2, 4) | st.floats(0, 3),
    "temperature": st.floats(-1, 3),
    "top_k": st.integers(-1, 60000) | st.none(),
    "top_p": st.floats(-0.5, 1.5) | st.none(),
    "seed": st.integers(-5, 2 ** 33) | st.none(),
    "kv_cache": st.booleans(),
    "chat": st.booleans(),
    "quantization": st.sampled_from(["fp32", "int8", "int4", "int3", "", "../x.gguf"]),
    "speculative": st.sampled_from([None, "prompt-lookup", "early-exit", "medusa", ""]),
    "num_draft_tokens": st.integers(-1, 10),
    "forced_ids": st.lists(st.integers(-3, 49160), max_size=5),
}
bodies = (st.fixed_dictionaries({"prompt": st.sampled_from(["Hello", "The sky is"])},
                                optional={f: near[f] for f in GENERATE_FIELDS if f != "prompt"})
          | st.fixed_dictionaries({}, optional={f: near[f] | json_values for f in GENERATE_FIELDS})
          | st.fixed_dictionaries({"prompt": st.just("Hi")}, optional={f: json_values for f in MODEL_FIELDS[:4]})
          | st.dictionaries(st.text(max_size=10), json_values, max_size=4)
          | json_values)


@pytest.fixture(scope="module")
def fuzz_client(make_app):
    return make_app(LLMVIZ_MAX_NEW_TOKENS=2, LLMVIZ_MAX_PROMPT_TOKENS=32).test_client()


def check(response):
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert error["status"] == response.status_code and error["message"]
    else:
        assert response.get_json()["tokens"]


def still_serving(client):
    response = client.post("/api/generate", json={"prompt": "The sky is", "max_new_tokens": 2, "seed": 0})
    assert response.status_code == 200 and len(response.get_json()["tokens"]) == 2


@FUZZ
@given(body=bodies)
def test_random_json_never_breaks_the_server(fuzz_client, body):
    check(fuzz_client.post("/api/generate", data=json.dumps(body), content_type="application/json"))


@FUZZ
@given(data=st.binary(max_size=200), content_type=st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "", "multipart/form-data"]))
def test_random_bytes_never_break_the_server(fuzz_client, data, content_type):
    check(fuzz_client.post("/api/generate", data=data, content_type=content_type or None))


def test_a_valid_request_succeeds_after_the_fuzzing(fuzz_client):
    still_serving(fuzz_client)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_random_json_never_breaks_a_stream(fuzz_client, body):
    """The stream checks the same way, and a stream that starts ends with `done`, never `error`."""
    response = fuzz_client.post("/api/stream", data=json.dumps(body), content_type="application/json")
    event(f"stream status {response.status_code}")
    if response.status_code != 200:
        return check(response)
    text = response.get_data(as_text=True)
    assert "event: error" not in text and text.rstrip().split("\n\n")[-1].startswith("event: done")


@FUZZ
@given(run=st.text(max_size=20), step=st.integers(0, 2) | st.integers(-5, 10 ** 12),
       layer=st.integers(0, 31) | st.integers(-5, 10 ** 12),
       part=st.sampled_from(["", "/attention/{layer}", "/feedforward/{layer}", "/embedding", "/logit-lens",
                             "/attention/{layer}?head=3", "/attention/{layer}?head=x"]))
def test_random_detail_paths_answer_200_or_404_never_5xx(fuzz_client, run_id_for_fuzz, run, step, layer, part):
    from urllib.parse import quote
    for rid in (quote(run, safe="") or "x", run_id_for_fuzz):
        response = fuzz_client.get(f"/api/runs/{rid}/steps/{step}" + part.format(layer=layer))
        event(f"detail status {response.status_code}")
        if response.status_code == 308:         # an id with "/" in it: werkzeug merges "//" by redirect
            continue
        assert response.status_code in (200, 400, 404), response.get_data(as_text=True)
        assert response.get_json() is not None


@pytest.fixture(scope="module")
def run_id_for_fuzz(fuzz_client):
    return fuzz_client.post("/api/generate", json={"prompt": "Hello there", "max_new_tokens": 2}).get_json()["id"]
