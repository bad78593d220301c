"""The Redis run store against a real redis-server (tests/conftest.py starts one per test):
any app sharing the Redis answers any run, every detail endpoint reads the same from a run
rebuilt from Redis as from the run in memory (float16 tolerance), TTL, byte budget, a Redis
that goes away and comes back, a restart that keeps finished runs."""
import json
import re
import time

import pytest
import redis

PROMPT = "The quick brown fox"
GREEDY = [" with", " a", " quick", " brown"]


@pytest.fixture()
def pair(make_app, redis_server):
    """Two apps (two 'workers') sharing one Redis."""
    config = {"LLMVIZ_REDIS_URL": redis_server.url}
    return make_app(**config), make_app(**config)


def generate(app, **body):
    response = app.test_client().post("/api/generate", json={"prompt": PROMPT, "max_new_tokens": 4, **body})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


PER_REQUEST = {"compute_ms"}   # how long this request took to answer (the overview's): not part of the run


def close_to(a, b, path="", tol=2e-3):
    """JSON equal, numbers within tol relative (float16 keeps 11 significant bits: ~5e-4)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a.keys() - PER_REQUEST:
            close_to(a[k], b[k], f"{path}.{k}", tol)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            close_to(x, y, f"{path}[{i}]", tol)
    elif isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= tol * max(1.0, abs(a), abs(b)), f"{path}: {a} vs {b}"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def detail_urls(app, run_id, step, n_layers=30):
    """Every detail endpoint the app has under /api/runs/<id>/steps/<s>/..., for a few layers."""
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/runs/<run_id>/steps/<int:step>/"):
            for layer in ([0, n_layers // 2, n_layers - 1] if "<int:layer>" in rule.rule else [None]):
                url = rule.rule.replace("<run_id>", run_id).replace("<int:step>", str(step))
                urls.append(url.replace("<int:layer>", str(layer)))
    return urls


@pytest.mark.parametrize("body", [{"temperature": 0.7, "top_k": 50, "seed": 3, "max_new_tokens": 5},
                                  {"speculative": "prompt-lookup", "max_new_tokens": 6,
                                   "prompt": "one two three one two three one two"}],
                         ids=["sampled", "speculative"])
def test_every_detail_endpoint_reads_the_same_through_another_worker(pair, body):
    here, there = pair
    run = generate(here, **body)
    rid = run["id"]
    local, remote = here.test_client(), there.test_client()
    assert remote.get(f"/api/runs/{rid}").get_json() == run          # summaries are stored exactly
    urls = [u for s in range(len(run["steps"])) for u in detail_urls(here, rid, s)]
    assert {"embedding", "feedforward", "logit-lens", "attention"} <= {u.split("/")[6] for u in urls}
    urls += [f"/api/runs/{rid}/steps/1/attention/3?head=2", f"/api/runs/{rid}/steps/1"]
    for url in urls:
        mine, theirs = local.get(url), remote.get(url)
        assert mine.status_code == theirs.status_code == 200, url
        close_to(mine.get_json(), theirs.get_json(), url)
    listed = remote.get("/api/runs").get_json()["runs"]
    assert listed[0] == {"id": rid, "status": "done", "prompt": run["request"]["prompt"],
                         "settings": run["settings"], "steps": len(run["steps"])}


def test_a_run_is_readable_through_any_worker_while_it_is_computed(pair):
    here, there = pair
    response = here.test_client().post("/api/stream", json={"prompt": PROMPT, "max_new_tokens": 30},
                                       buffered=False)
    chunks = iter(response.response)
    rid = json.loads(next(chunks).decode().split("data: ", 1)[1])["id"]
    next(chunks)                                                      # step 0 is computed and stored
    seen = there.test_client().get(f"/api/runs/{rid}").get_json()
    assert seen["status"] == "running" and len(seen["steps"]) >= 1
    assert there.test_client().get(f"/api/runs/{rid}/steps/0/attention/0").status_code == 200
    response.close()
    assert there.test_client().get(f"/api/runs/{rid}").get_json()["status"] == "stopped"


def test_stored_compactly_with_a_ttl(make_app, redis_server, real_model):
    from llmviz.web.limits import trace_nbytes
    app = make_app(LLMVIZ_REDIS_URL=redis_server.url, LLMVIZ_RUN_TTL=600)
    run = generate(app, max_new_tokens=8)
    in_memory = make_app()                                            # the same run, kept in memory
    same = generate(in_memory, max_new_tokens=8)
    raw = trace_nbytes(in_memory.extensions["llmviz"]["runs"].get(same["id"]).trace)   # float32 arrays
    stored = app.extensions["llmviz"]["runs"].stored_bytes()
    print(f"8-token run: {raw} bytes in memory, {stored} in Redis")
    assert stored < raw / 4, (stored, raw)
    r = redis.Redis.from_url(redis_server.url)
    for key in (f"llmviz:run:{run['id']}", f"llmviz:run:{run['id']}:steps", f"llmviz:run:{run['id']}:summaries",
                f"llmviz:run:{run['id']}:json"):
        assert 590 <= r.ttl(key) <= 600, key


def test_a_run_unused_for_longer_than_the_ttl_is_gone(make_app, redis_server):
    app = make_app(LLMVIZ_REDIS_URL=redis_server.url, LLMVIZ_RUN_TTL=3600)
    old = generate(app)["id"]
    r = redis.Redis.from_url(redis_server.url)
    r.zadd("llmviz:runs", {old: time.time() - 3601})                  # as if last used over an hour ago
    generate(app)                                                     # any write trims the store
    gone = app.test_client().get(f"/api/runs/{old}")
    assert gone.status_code == 404
    assert gone.get_json()["error"]["message"] == (f"no run '{old}' in the run store; runs are kept 1 h after "
                                                   "their last use, so generate it again")
    assert r.exists(f"llmviz:run:{old}:steps") == 0


def test_the_byte_budget_drops_the_least_recently_used(make_app, redis_server):
    probe = make_app(LLMVIZ_REDIS_URL=redis_server.url, LLMVIZ_REDIS_PREFIX="probe:")
    generate(probe, prompt="Hello", max_new_tokens=2)
    one_run = probe.extensions["llmviz"]["runs"].stored_bytes()
    app = make_app(LLMVIZ_REDIS_URL=redis_server.url, LLMVIZ_MAX_STORED_BYTES=int(2.5 * one_run))
    client = app.test_client()
    ids = [generate(app, prompt="Hello", max_new_tokens=2)["id"] for _ in range(2)]
    assert client.get(f"/api/runs/{ids[0]}").status_code == 200      # now the most recently used
    ids.append(generate(app, prompt="Hello", max_new_tokens=2)["id"])
    kept = [i for i in ids if client.get(f"/api/runs/{i}").status_code == 200]
    assert kept == [ids[0], ids[2]]
    assert app.extensions["llmviz"]["runs"].stored_bytes() <= 2.5 * one_run
    gone = client.get(f"/api/runs/{ids[1]}/steps/0/embedding").get_json()["error"]
    assert gone["field"] == "run" and gone["message"].startswith(f"run '{ids[1]}' was evicted: the run store keeps")


def test_a_step_read_after_its_run_was_dropped_says_so(pair, redis_server):
    here, there = pair
    rid = generate(here)["id"]
    remote = there.test_client()
    assert remote.get(f"/api/runs/{rid}").status_code == 200          # read back: steps not yet unpacked
    redis.Redis.from_url(redis_server.url).delete(f"llmviz:run:{rid}:steps")   # dropped meanwhile
    gone = remote.get(f"/api/runs/{rid}/steps/2/embedding")
    assert gone.status_code == 404
    assert gone.get_json()["error"]["message"] == ("step 2 of this run is no longer stored (the run was dropped "
                                                   "from the store to keep within its budget); generate it again")


def test_redis_down_answers_503_quickly_and_recovers_by_itself(make_app, redis_server):
    app = make_app(LLMVIZ_REDIS_URL=redis_server.url, LLMVIZ_RETRY_AFTER=4)
    client = app.test_client()
    rid = generate(app)["id"]
    redis_server.stop()
    for method, url in [("post", "/api/generate"), ("post", "/api/stream"), ("get", f"/api/runs/{rid}9"),
                        ("get", "/api/runs"), ("get", "/healthz")]:
        t0 = time.monotonic()
        answer = getattr(client, method)(url, json={"prompt": PROMPT, "max_new_tokens": 2}
                                         if method == "post" else None)
        assert time.monotonic() - t0 < 5, url
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "4", url
        error = answer.get_json()["error"]
        assert re.fullmatch(r"the run store \(Redis at 127\.0\.0\.1:\d+\) is (unavailable|unreachable): .+",
                            error["message"]), error
    redis_server.start()
    assert client.get("/healthz").get_json()["store"] == "redis"
    assert [t["text"] for t in generate(app)["tokens"]] == GREEDY


def test_redis_lost_mid_stream_ends_the_stream_with_a_503_event(make_app, redis_server):
    app = make_app(LLMVIZ_REDIS_URL=redis_server.url)
    response = app.test_client().post("/api/stream", json={"prompt": PROMPT, "max_new_tokens": 40},
                                      buffered=False)
    chunks = iter(response.response)
    next(chunks), next(chunks)                                        # run, step 0
    redis_server.stop()
    last = [c.decode() for c in chunks][-1]
    assert last.startswith("event: error\n")
    assert json.loads(last.split("data: ", 1)[1])["error"]["status"] == 503
    assert app.extensions["llmviz"]["admission"].active == 0          # its slot is free again


def test_a_full_restart_keeps_finished_runs(make_app, redis_server):
    from llmviz.web import close_app
    before = make_app(LLMVIZ_REDIS_URL=redis_server.url)
    run = generate(before)
    attention = before.test_client().get(f"/api/runs/{run['id']}/steps/1/attention/2").get_json()
    close_app(before)
    redis_server.stop()                                               # every process down, then up again
    redis_server.start()
    after = make_app(LLMVIZ_REDIS_URL=redis_server.url).test_client()
    assert after.get(f"/api/runs/{run['id']}").get_json() == run
    close_to(after.get(f"/api/runs/{run['id']}/steps/1/attention/2").get_json(), attention)


def test_a_run_whose_worker_died_says_so(pair, redis_server):
    here, there = pair
    response = here.test_client().post("/api/stream", json={"prompt": PROMPT, "max_new_tokens": 40},
                                       buffered=False)
    chunks = iter(response.response)
    rid = json.loads(next(chunks).decode().split("data: ", 1)[1])["id"]
    next(chunks)
    redis.Redis.from_url(redis_server.url).delete(f"llmviz:run:{rid}:alive")   # its lease ran out
    seen = there.test_client().get(f"/api/runs/{rid}").get_json()
    response.close()
    assert seen["status"] == "error"
    assert seen["error"] == ("the server process computing this run stopped before it finished "
                             "(it was restarted or killed); generate it again")


def test_a_batch_is_stored_for_every_worker(pair):
    here, there = pair
    body = here.test_client().post("/api/batch", json={"prompts": [PROMPT, "Once upon a time"],
                                                       "max_new_tokens": 3}).get_json()
    for run in body["runs"]:
        assert there.test_client().get(f"/api/runs/{run['id']}").get_json() == run
        assert there.test_client().get(f"/api/runs/{run['id']}/steps/2/logit-lens").status_code == 200
