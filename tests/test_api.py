"""The JSON API on the real default model: what a run returns, its JSON twin, the stream,
the lazy detail endpoints, the optimizations and the error shape (docs/api.md).

Greedy decoding of "The quick brown fox" by SmolLM2-135M-Instruct continues
" with a quick brown bear." (pinned against the engine in test_generate.py).
"""
import json
import threading

import numpy as np
import pytest

PROMPT = "The quick brown fox"
PROMPT_PIECES = ["The", " quick", " brown", " fox"]
GREEDY = [" with", " a", " quick", " brown"]


def post(client, url="/api/generate", **body):
    response = client.post(url, json={"prompt": PROMPT, "max_new_tokens": 4, **body})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def sse_events(text):
    """'event: x\\ndata: {...}\\n\\n' blocks -> [(event, data)]"""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.fixture(scope="module")
def greedy_run(app):
    return post(app.test_client())


def test_generate_returns_the_run(greedy_run):
    run = greedy_run
    assert [t["text"] for t in run["tokens"]] == GREEDY
    assert run["text"] == "".join(GREEDY)
    assert [t["text"] for t in run["prompt_tokens"]] == PROMPT_PIECES
    assert run["status"] == "done" and len(run["id"]) == 12
    steps = run["steps"]
    assert [s["kind"] for s in steps] == ["prefill", "decode", "decode", "decode"]
    assert [t["text"] for t in steps[0]["input_tokens"]] == PROMPT_PIECES
    assert steps[1]["kv"] == {"reused_rows": 4, "computed_rows": 1, "cache_bytes": 5 * 30 * 3 * 64 * 2 * 4}
    assert [s["emitted"][0]["text"] for s in steps] == GREEDY
    assert run["timings"]["per_token_ms"] and len(run["timings"]["per_token_ms"]) == 4
    assert run["request"]["seed"] is not None                       # the seed actually used, for permalinks


def test_step_summary_is_the_compact_trace(greedy_run):
    step = greedy_run["steps"][0]
    assert step["top"][0]["text"] == " with"
    probs = [t["prob"] for t in step["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    assert step["sampling"]["greedy"] and step["sampling"]["chosen"]["text"] == " with"
    assert len(step["residual_norms"]) == 30 and len(step["residual_norms"][0]) == 4
    assert len(step["attention_focus"]) == 30 and len(step["attention_focus"][0]) == 9
    assert set(step["timings_ms"]) >= {"embed", "attention", "feedforward", "prediction", "sampling", "total"}


def test_get_run_is_the_json_twin(client, greedy_run):
    again = client.get(f"/api/runs/{greedy_run['id']}").get_json()
    assert again == greedy_run
    assert client.get(f"/api/runs/{greedy_run['id']}/steps/2").get_json() == greedy_run["steps"][2]
    listed = client.get("/api/runs").get_json()["runs"]
    assert greedy_run["id"] in [r["id"] for r in listed]


def test_stream_sends_run_then_each_step_then_done(client):
    response = client.post("/api/stream", json={"prompt": PROMPT, "max_new_tokens": 4})
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = sse_events(response.get_data(as_text=True))
    assert [e for e, _ in events] == ["run", "step", "step", "step", "step", "done"]
    header = events[0][1]
    assert [t["text"] for t in header["prompt_tokens"]] == PROMPT_PIECES
    assert header["model"]["arch"] == "llama" and header["model"]["n_layers"] == 30
    assert [d["step"]["emitted"][0]["text"] for e, d in events if e == "step"] == GREEDY
    assert events[2][1]["text"] == " with a"                         # the text so far, after step 1
    done = events[-1][1]
    assert done["text"] == "".join(GREEDY) and done["status"] == "done"
    stored = client.get(f"/api/runs/{header['id']}").get_json()
    assert stored["steps"] == [d["step"] for e, d in events if e == "step"]


def test_attention_detail(client, greedy_run):
    run_id = greedy_run["id"]
    prefill = client.get(f"/api/runs/{run_id}/steps/0/attention/3").get_json()
    probs = np.array(prefill["probs"])
    assert probs.shape == (9, 4, 4)                                  # [H, T, S]
    assert np.allclose(probs.sum(-1), 1.0, atol=1e-3)
    assert np.allclose(np.triu(probs, 1), 0.0)                       # causal: no looking ahead
    assert [t["text"] for t in prefill["key_tokens"]] == PROMPT_PIECES
    one_head = client.get(f"/api/runs/{run_id}/steps/0/attention/3?head=2").get_json()
    assert one_head["head"] == 2 and np.allclose(one_head["probs"][0], probs[2])
    missing = client.get(f"/api/runs/{run_id}/steps/0/attention/3?head=9").get_json()["error"]
    assert missing == {"status": 404, "message": "head 9 does not exist (the model has 9)", "field": "head"}
    decode = client.get(f"/api/runs/{run_id}/steps/2/attention/0").get_json()
    assert np.array(decode["probs"]).shape == (9, 1, 6)
    assert decode["cached_keys"] == 5 and decode["query_positions"] == [5]
    assert [t["text"] for t in decode["key_tokens"]] == PROMPT_PIECES + GREEDY[:2]


def test_embedding_feedforward_and_logit_lens(client, greedy_run):
    run_id = greedy_run["id"]
    emb = client.get(f"/api/runs/{run_id}/steps/0/embedding").get_json()
    assert np.array(emb["vectors"]).shape == (4, 576)
    assert emb["position"]["kind"] == "rope" and np.array(emb["position"]["angles"]).shape == (4, 32)
    assert np.array(emb["pca"]["points"]).shape == (4, 2)
    ffn = client.get(f"/api/runs/{run_id}/steps/1/feedforward/5").get_json()
    assert sum(ffn["histogram"]["counts"]) == 1536 and ffn["size"] == 1536
    assert len(ffn["residual_norms"]) == 30
    assert abs(ffn["top_neurons"][0]["value"]) >= abs(ffn["top_neurons"][-1]["value"])
    lens = client.get(f"/api/runs/{run_id}/steps/0/logit-lens").get_json()
    assert len(lens["layers"]) == 30 and len(lens["layers"][0]) == 5
    assert lens["layers"][-1][0]["text"] == " with"                  # the last layer is the real prediction


def test_forced_token_continues_from_another_candidate(client):
    second = client.get(f"/api/runs/{post(client, max_new_tokens=1)['id']}").get_json()["steps"][0]
    assert second["top"][1]["text"] == " and"                        # the runner-up after "... fox"
    run = post(client, forced_ids=[second["top"][1]["id"]], max_new_tokens=3)
    assert run["tokens"][0]["text"] == " and"
    assert run["steps"][0]["sampling"]["chosen"]["text"] == " and"
    assert run["request"]["forced_ids"] == [second["top"][1]["id"]]


def test_kv_cache_off_gives_the_same_tokens_and_recomputes(client):
    run = post(client, kv_cache=False)
    assert [t["text"] for t in run["tokens"]] == GREEDY
    assert [s["kv"]["reused_rows"] for s in run["steps"]] == [0, 0, 0, 0]
    assert [s["kv"]["computed_rows"] for s in run["steps"]] == [4, 5, 6, 7]


def test_int8_weights_are_smaller(client, greedy_run):
    run = post(client, quantization="int8", max_new_tokens=2)
    assert run["model"]["quantization"] == "int8"
    assert run["model"]["weight_bytes"] < greedy_run["model"]["weight_bytes"] / 3
    assert len(run["tokens"]) == 2


def test_speculative_prompt_lookup_keeps_greedy_output(client):
    prompt = "one two three four. one two three four. one two"
    plain = post(client, prompt=prompt, max_new_tokens=6)
    spec = post(client, prompt=prompt, max_new_tokens=6, speculative="prompt-lookup", num_draft_tokens=3)
    assert [t["id"] for t in spec["tokens"]] == [t["id"] for t in plain["tokens"]]
    assert spec["stats"]["proposed"] > 0 and 0 <= spec["stats"]["acceptance_rate"] <= 1
    drafted = [s["speculative"] for s in spec["steps"][1:] if s["speculative"]["draft"]]
    assert drafted, "prompt lookup should have found the repeated text"
    assert all(set(d) == {"id", "text", "special", "accepted"} for s in drafted for d in s["draft"])


def test_batch_generates_each_prompt_as_alone(client):
    prompts = [PROMPT, "The capital of France is"]
    response = client.post("/api/batch", json={"prompts": prompts, "max_new_tokens": 3})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["batch"]["size"] == 2 and body["batch"]["tokens"] == 6
    assert [r["request"]["prompt"] for r in body["runs"]] == prompts
    assert [t["text"] for t in body["runs"][0]["tokens"]] == GREEDY[:3]
    alone = post(client, prompt=prompts[1], max_new_tokens=3)
    assert body["runs"][1]["tokens"] == alone["tokens"]
    assert client.get(f"/api/runs/{body['runs'][1]['id']}/steps/1/attention/0").status_code == 200


def test_concurrent_streams_get_their_own_runs(app):
    """Two learners at once: each stream gets its own tokens (the scheduler batches them)."""
    results = {}

    def run(prompt):
        response = app.test_client().post("/api/stream", json={"prompt": prompt, "max_new_tokens": 3})
        events = sse_events(response.get_data(as_text=True))
        results[prompt] = [d["step"]["emitted"][0]["text"] for e, d in events if e == "step"]

    threads = [threading.Thread(target=run, args=(p,)) for p in (PROMPT, "Once upon a time")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results[PROMPT] == GREEDY[:3]
    assert len(results["Once upon a time"]) == 3


def test_model_card(client):
    card = client.get("/api/model").get_json()
    assert card["name"] == "SmolLM2-135M-Instruct"
    assert card["config"]["arch"] == "llama" and card["config"]["n_kv_heads"] == 3
    assert card["weight_bytes"] > 400e6 and card["parameters"] > 130e6
    assert "Q4_1" in card["file_types"]
    assert card["kv_bytes_per_token"] == 2 * 30 * 3 * 64 * 4
    assert card["model"]["name"] == card["name"] and card["lens_top"] == 5 and card["top_n"] == 10


def test_model_facts_list_every_weight_format_with_its_real_size(client):
    """Sizes come from the shapes (quant.model_nbytes); a quantized model really has that many bytes."""
    facts = client.get("/api/model").get_json()
    formats = {q["name"]: q for q in facts["quantizations"]}
    assert list(formats) == ["fp32", "int8", "int8-g32", "int4"]
    assert formats["fp32"]["weight_bytes"] == facts["weight_bytes"]
    assert formats["fp32"]["bits_per_weight"] == 32.0
    assert 5.9 < formats["int4"]["bits_per_weight"] < 6.2           # 4 bits + a float32 scale and minimum per 32
    int8 = client.get("/api/model?quantization=int8").get_json()
    assert int8["quantization"] == "int8" and int8["weight_bytes"] == formats["int8"]["weight_bytes"]
    assert [d["name"] for d in facts["draft_sources"]] == ["prompt-lookup", "early-exit"]
    assert client.get("/api/model?quantization=int3").get_json()["error"]["message"] == (
        "quantization must be one of fp32, int8, int8-g32, int4")


def test_request_fields_follow_the_server_limits(make_app):
    """The ranges the form shows are the ones the server checks."""
    client = make_app(LLMVIZ_MAX_NEW_TOKENS=8, LLMVIZ_MAX_DRAFT_TOKENS=3).test_client()
    fields = client.get("/api/model").get_json()["fields"]
    assert fields["max_new_tokens"] == {"type": "int", "min": 1, "max": 8, "default": 8}
    assert fields["num_draft_tokens"]["max"] == 3 and fields["top_k"]["max"] == 49152
    assert fields["top_p"]["min_exclusive"] is True
    response = client.post("/api/generate", json={"prompt": "hi", "num_draft_tokens": 4})
    assert response.get_json()["error"]["message"] == "num_draft_tokens must be a whole number from 1 to 3 (got 4)"


def test_the_page_boots_with_the_same_facts_as_the_api(client):
    page = client.get("/").get_data(as_text=True)
    boot = json.loads(page.split('<script type="application/json" id="boot">', 1)[1].split("</script>", 1)[0])
    api = client.get("/api/model").get_json()
    assert {k: api[k] for k in boot} == boot


def test_healthz(client):
    assert client.get("/healthz").get_json()["status"] == "ok"


@pytest.mark.parametrize("method, url, status, message", [
    ("get", "/api/generate", 405, "GET is not allowed on /api/generate"),
    ("post", "/api/runs", 405, "POST is not allowed on /api/runs"),
    ("get", "/api/does-not-exist", 404, "there is nothing at GET /api/does-not-exist; docs/api.md lists the endpoints"),
])
def test_http_errors_use_the_one_error_shape(client, method, url, status, message):
    response = getattr(client, method)(url)
    assert response.status_code == status
    assert response.get_json() == {"error": {"status": status, "message": message, "field": None}}


def test_page_and_vendored_plotly(client):
    page = client.get("/").get_data(as_text=True)
    for testid in ("prompt", "generate", "toggle-kv-cache", "select-quantization",
                   "toggle-batching", "toggle-speculative", "timing"):
        assert f'data-testid="{testid}"' in page
    assert 'src="/vendor/plotly.min.js"' in page and "cdn" not in page.lower()
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript"
    assert b"plotly.js" in js.get_data()[:400]


def test_gpt2_family_shows_learned_positions(make_app, fixtures_dir):
    """The same API over a (tiny, random) GPT-2: position enters as learned vectors, not rotary angles."""
    app = make_app(LLMVIZ_MODEL=None, LLMVIZ_MODEL_PATH=str(fixtures_dir / "tiny-gpt2"), LLMVIZ_SCHEDULER=False)
    client = app.test_client()
    run = post(client, prompt="Hello world", max_new_tokens=2)
    assert run["model"]["arch"] == "gpt2" and run["model"]["position_kind"] == "learned"
    emb = client.get(f"/api/runs/{run['id']}/steps/0/embedding").get_json()
    assert emb["position"]["kind"] == "learned"
    assert np.array(emb["position"]["vectors"]).shape == np.array(emb["vectors"]).shape
    assert 'data-arch="gpt2"' in client.get("/").get_data(as_text=True)
