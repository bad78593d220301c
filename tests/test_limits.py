"""Limits that protect a shared server: concurrent runs, stored runs, disconnects, run time (issue 5)."""
import json

from llmviz.web.validation import trace_bytes


def start_stream(client, **body):
    """POST /api/stream and read up to the first step; the response stays open (a run in progress)."""
    response = client.post("/api/stream", json={"prompt": "Once upon a time", "seed": 0, **body}, buffered=False)
    assert response.status_code == 200
    events = iter(response.response)
    first = [next(events), next(events)]             # the "run" header, then the first step
    run_id = json.loads(first[0].decode().split("data: ", 1)[1])["id"]
    return response, run_id


def test_a_full_line_answers_429_with_retry_after(make_app):
    app = make_app(LLMVIZ_MAX_ACTIVE=1, LLMVIZ_MAX_QUEUE=0, LLMVIZ_RETRY_AFTER=3)
    client = app.test_client()
    stream, _ = start_stream(client, max_new_tokens=50)
    try:
        busy = client.post("/api/generate", json={"prompt": "Hi", "max_new_tokens": 1})
        assert busy.status_code == 429
        assert busy.headers["Retry-After"] == "3"
        assert busy.get_json() == {"error": {
            "status": 429, "field": None,
            "message": "the server is full: 1 runs are computing and 0 are waiting in line; try again in a moment"}}
    finally:
        stream.close()
    after = client.post("/api/generate", json={"prompt": "Hi", "max_new_tokens": 1})
    assert after.status_code == 200                 # the closed stream gave its slot back


def test_closing_the_stream_stops_the_generation(make_app):
    app = make_app()
    client = app.test_client()
    stream, run_id = start_stream(client, max_new_tokens=60)
    stream.close()                                   # what the server does when the browser goes away
    store = app.extensions["llmviz"]["runs"]
    run = store.get(run_id)
    assert run.status == "stopped"
    # Another run through the same scheduler: by the time it is done, the scheduler has passed
    # several step boundaries, so a step of the closed run that was in flight has finished.
    assert client.post("/api/generate", json={"prompt": "Hi", "max_new_tokens": 2}).status_code == 200
    n = len(run.gen.new_ids)
    assert client.post("/api/generate", json={"prompt": "Hi", "max_new_tokens": 2}).status_code == 200
    assert len(run.gen.new_ids) == n < 5             # and then nothing more is computed
    assert app.extensions["llmviz"]["admission"].active == 0
    assert client.get(f"/api/runs/{run_id}").get_json()["status"] == "stopped"


def test_a_run_stops_at_the_time_limit_and_says_so(make_app):
    app = make_app(LLMVIZ_RUN_SECONDS=0.3)
    body = app.test_client().post("/api/generate", json={"prompt": "Count: one, two,", "max_new_tokens": 200,
                                                         "seed": 0}).get_json()
    n = len(body["tokens"])
    assert 1 <= n < 200
    assert body["timings"]["stopped"] == (f"the server's time limit of 0.3 s per run was reached after {n} tokens")


def test_least_recently_used_run_is_evicted_and_the_404_says_so(make_app):
    app = make_app(LLMVIZ_MAX_RUNS=2)
    client = app.test_client()
    ids = [client.post("/api/generate", json={"prompt": p, "max_new_tokens": 1}).get_json()["id"]
           for p in ("one", "two")]
    assert client.get(f"/api/runs/{ids[0]}").status_code == 200      # run one is now the most recent
    ids.append(client.post("/api/generate", json={"prompt": "three", "max_new_tokens": 1}).get_json()["id"])
    assert client.get(f"/api/runs/{ids[0]}").status_code == 200
    gone = client.get(f"/api/runs/{ids[1]}/steps/0/attention/0")
    assert gone.status_code == 404
    assert gone.get_json()["error"] == {
        "status": 404, "field": "run",
        "message": f"run '{ids[1]}' was evicted: this server keeps only the 2 most recently used runs (and a "
                   "memory budget for their traces); generate it again"}


def test_stored_traces_stay_within_the_byte_budget(make_app, real_model):
    one_run = trace_bytes(real_model.config, 2, 2, True)
    app = make_app(LLMVIZ_MAX_STORED_BYTES=int(2.5 * one_run))
    client = app.test_client()
    ids = [client.post("/api/generate", json={"prompt": "Hello", "max_new_tokens": 2}).get_json()["id"]
           for _ in range(5)]
    kept = [i for i in ids if client.get(f"/api/runs/{i}").status_code == 200]
    assert kept == ids[-3:]          # two finished runs fit the budget, plus the one just added
