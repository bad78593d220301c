"""The production topology on one machine: gunicorn (gunicorn.conf.py) with two workers sharing
one real Redis, no sticky sessions. Every run is readable through either worker; a worker
killed with SIGKILL mid-run ends its stream at once while the other worker's stream goes on,
and the server keeps answering."""
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("loadtest", ROOT / "tools" / "loadtest.py")
loadtest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(loadtest)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(port, gunicorn master pid): 2 workers, LLMVIZ_MAX_ACTIVE=4, Redis in a temporary directory."""
    tmp = tmp_path_factory.mktemp("workers")
    redis_server = RedisServer(tmp).start()
    port = free_port()
    env = {**os.environ, "LLMVIZ_REDIS_URL": redis_server.url, "LLMVIZ_WORKERS": "2", "LLMVIZ_MAX_ACTIVE": "4",
           "LLMVIZ_BIND": f"127.0.0.1:{port}", "LLMVIZ_WARMUP": "false",
           "LLMVIZ_ACCEPT_DELAY": "0.05"}                # 10x the default: the split holds on a busy machine
    gunicorn = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py",
                                 "--pid", str(tmp / "gunicorn.pid")], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:                                        # ready when both workers answer (a fixture polls)
        try:
            status = get(port, "/healthz")[0]
            if status == 200 and len(loadtest.children(gunicorn.pid)) == 2:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or gunicorn.poll() is not None:
            pytest.fail("gunicorn did not start")
        time.sleep(0.2)
    yield port, gunicorn.pid
    gunicorn.send_signal(signal.SIGTERM)
    gunicorn.wait(timeout=60)
    redis_server.stop()


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def open_stream(port, **body):
    """POST /api/stream; -> (connection, response, run id) after the run header and step 0."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/api/stream", body=json.dumps({"prompt": "Once upon a time", "seed": 0, **body}),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    events = sse(response)
    name, data = next(events)
    assert name == "run"
    assert next(events)[0] == "step"
    return conn, response, events, data["id"]


def sse(response):
    event = None
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


def drain(events) -> list:
    """Event names until the stream ends; a lost connection (its worker died) is an end too."""
    names = []
    try:
        for name, _ in events:
            names.append(name)
    except (http.client.HTTPException, OSError):
        names.append("<connection lost>")
    return names


def test_every_run_is_readable_three_times_through_any_worker(server):
    port, master = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/api/generate", body=json.dumps({"prompt": "The quick brown fox", "max_new_tokens": 4}),
                 headers={"Content-Type": "application/json"})
    run = json.loads(conn.getresponse().read())
    conn.close()
    answered_by = set()
    for _ in range(3):
        for _ in range(4):                             # new connections: gunicorn picks any worker
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", f"/api/runs/{run['id']}")
            response = c.getresponse()                 # (accepted by a worker by now, still open)
            worker = loadtest.serving_worker(master, port, c.sock.getsockname()[1])
            answered_by.add(worker)
            assert response.getheader("X-Served-By") == f"{socket.gethostname()}:{worker}"   # says who answered
            assert response.status == 200 and json.loads(response.read()) == run
            c.close()
    assert answered_by <= set(loadtest.children(master)) and None not in answered_by


def test_streams_opened_one_after_another_split_evenly_between_the_workers(server):
    """The worker serving fewer connections accepts the next (llmviz/web/worker.py)."""
    port, master = server
    streams = []
    try:
        for _ in range(6):                             # each computing (and holding its connection) until closed
            streams.append(open_stream(port, max_new_tokens=200))
        served_by = Counter(response.getheader("X-Served-By") for _, response, _, _ in streams)
        assert sorted(served_by.values()) == [3, 3], served_by
    finally:
        for conn, *_ in streams:
            conn.close()


def test_a_worker_killed_mid_run_ends_its_streams_and_the_others_go_on(server):
    port, master = server
    streams = [open_stream(port, max_new_tokens=60) for _ in range(2)]
    workers = [loadtest.serving_worker(master, port, conn.sock.getsockname()[1]) for conn, *_ in streams]
    for _ in range(8):                                 # until the two streams are on different workers
        if workers[0] != workers[1]:
            break
        streams[1][0].close()
        streams[1] = open_stream(port, max_new_tokens=60)
        workers[1] = loadtest.serving_worker(master, port, streams[1][0].sock.getsockname()[1])
    assert workers[0] != workers[1], "gunicorn put every stream on one worker"
    os.kill(workers[0], signal.SIGKILL)
    t0 = time.monotonic()
    killed_events = drain(streams[0][2])
    assert time.monotonic() - t0 < 5
    assert "done" not in killed_events
    survivor = drain(streams[1][2])
    assert survivor[-1] == "done" and "error" not in survivor
    status, body = get(port, "/healthz")             # the server answers new requests
    assert status == 200
    status, body = get(port, f"/api/runs/{streams[1][3]}")
    assert status == 200 and json.loads(body)["status"] == "done"
    replaced = two_workers(master)                   # gunicorn starts a new worker, on the free core
    assert workers[0] not in replaced
    if os.cpu_count() >= 2:
        assert sorted(cores(pid) for pid in replaced) == [(0,), (1,)]


def two_workers(master, seconds=30):
    """The two workers' pids, once there are two and each has chosen its core (a worker just
    forked runs on every core until gunicorn's post_fork pins it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = loadtest.children(master)
        try:
            if len(pids) == 2 and ((os.cpu_count() or 1) < 2 or all(len(cores(pid)) == 1 for pid in pids)):
                return pids
        except (OSError, StopIteration):                # a worker that is just starting or ending
            pass
        time.sleep(0.2)
    return loadtest.children(master)


def cores(pid) -> tuple:
    """The cores a process may run on, in order (/proc/<pid>/status: Cpus_allowed_list, e.g. "0" or "0-1")."""
    text = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("Cpus_allowed_list"))
    found = set()
    for part in text.split(":")[1].strip().split(","):
        lo, _, hi = part.partition("-")
        found |= set(range(int(lo), int(hi or lo) + 1))
    return tuple(sorted(found))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one worker per core needs two cores")
def test_each_worker_runs_on_a_core_of_its_own(server):
    port, master = server
    assert sorted(cores(pid) for pid in two_workers(master)) == [(0,), (1,)]
