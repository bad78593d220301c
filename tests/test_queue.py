"""Waiting in line instead of being refused (issue 11): the FIFO admission line, the `queued`
events of a stream, a client that leaves the line, /api/generate waiting, and the app's
scheduler thread ending when the app is closed."""
import json
import threading

import pytest

from llmviz.web import close_app
from llmviz.web.admission import Admission, LineFull


def test_the_line_is_first_come_first_served():
    line = Admission(max_active=1, max_queue=3)
    first, second, third = line.enter(), line.enter(), line.enter()
    assert (first.admitted, second.ahead, third.ahead) == (True, 0, 1)
    fourth = line.enter()
    with pytest.raises(LineFull):
        line.enter()                                  # 1 computing + 3 waiting: full
    first.leave()
    assert second.admitted and not third.admitted
    assert (second.ahead, third.ahead, fourth.ahead) == (None, 0, 1)
    second.leave()
    third.leave()                                     # admitted, then done
    assert fourth.admitted and line.active == 1 and line.waiting == 0


def test_leaving_the_line_moves_everyone_behind_up():
    line = Admission(max_active=1, max_queue=8)
    running, a, b, c = line.enter(), line.enter(), line.enter(), line.enter()
    b.leave()
    b.leave()                                         # twice is harmless
    assert (a.ahead, c.ahead, line.waiting) == (0, 1, 2)
    assert c.wait(last=2, timeout=5) == 1             # a changed place returns at once
    running.leave()
    assert a.admitted and c.ahead == 0


def test_wait_admitted_gives_up_after_its_time():
    line = Admission(max_active=1, max_queue=1)
    line.enter()
    assert line.enter().wait_admitted(0.05) is False


def events_of(response):
    """Iterate a streamed SSE response -> (event, data), skipping the line's comment heartbeats."""
    for chunk in response.response:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        if text.startswith(":"):
            continue
        lines = dict(line.split(": ", 1) for line in text.strip().splitlines())
        yield lines["event"], json.loads(lines["data"])


def open_stream(client, **body):
    response = client.post("/api/stream", json={"prompt": "Once upon a time", "seed": 0, "max_new_tokens": 40,
                                                **body}, buffered=False)
    assert response.status_code == 200
    return response, events_of(response)


def test_a_stream_waits_with_its_place_in_line_and_then_runs(make_app):
    app = make_app(LLMVIZ_MAX_ACTIVE=1)
    client = app.test_client()
    a, a_events = open_stream(client)
    assert next(a_events)[0] == "run"                 # a computes
    b, b_events = open_stream(client)
    c, c_events = open_stream(client, max_new_tokens=3)
    assert next(b_events) == ("queued", {"position": 0})
    assert next(c_events) == ("queued", {"position": 1})
    a.close()                                         # a's student closed the tab: b takes the slot
    assert next(c_events) == ("queued", {"position": 0})
    assert next(b_events)[0] == "run"
    b.close()
    names = [name for name, _ in c_events]
    assert names == ["run", "step", "step", "step", "done"]


def test_a_client_that_goes_away_leaves_the_line(make_app):
    app = make_app(LLMVIZ_MAX_ACTIVE=1)
    admission = app.extensions["llmviz"]["admission"]
    client = app.test_client()
    a, a_events = open_stream(client)
    next(a_events)
    b, b_events = open_stream(client)
    c, c_events = open_stream(client)
    assert next(b_events) == ("queued", {"position": 0}) and next(c_events) == ("queued", {"position": 1})
    b.close()                                         # gone before its turn
    assert next(c_events) == ("queued", {"position": 0})
    assert admission.waiting == 1
    a.close()
    assert next(c_events)[0] == "run"
    c.close()
    assert admission.active == 0 and admission.waiting == 0


def test_generate_waits_for_a_slot(make_app):
    app = make_app(LLMVIZ_MAX_ACTIVE=1)
    admission = app.extensions["llmviz"]["admission"]
    client = app.test_client()
    a, a_events = open_stream(client)
    next(a_events)
    answers = []
    waiter = threading.Thread(target=lambda: answers.append(app.test_client().post(
        "/api/generate", json={"prompt": "The quick brown fox", "max_new_tokens": 4})))
    waiter.start()
    with admission.changed:                           # the request is in line (no sleep: the line's condition)
        assert admission.changed.wait_for(lambda: admission.waiting == 1, timeout=30)
    a.close()
    waiter.join(timeout=60)
    assert answers[0].status_code == 200
    assert [t["text"] for t in answers[0].get_json()["tokens"]] == [" with", " a", " quick", " brown"]


def test_generate_gives_up_waiting_at_the_run_time_limit(make_app):
    app = make_app(LLMVIZ_MAX_ACTIVE=1, LLMVIZ_RUN_SECONDS=0.3, LLMVIZ_RETRY_AFTER=2)
    client = app.test_client()
    a, a_events = open_stream(client)
    next(a_events)                                    # a holds the slot until its stream is read on
    try:
        waited = client.post("/api/generate", json={"prompt": "Hi", "max_new_tokens": 1})
    finally:
        a.close()
    assert waited.status_code == 503 and waited.headers["Retry-After"] == "2"
    assert waited.get_json() == {"error": {"status": 503, "field": None, "message":
                                           "no slot became free within the server's limit of 0.3 s; "
                                           "try again in a moment"}}


def test_thirty_at_once_are_all_served_by_the_default_app(make_app):
    """The default `python app.py` settings (4 computing at once): the other 26 wait, none is refused.
    (A wait in line is bounded by the run time limit; it is raised here so that a busy test machine
    cannot turn a slow wait into a 503.)"""
    app = make_app(LLMVIZ_RUN_SECONDS=600)
    statuses, lock = [], threading.Lock()

    def student(i):
        r = app.test_client().post("/api/generate", json={"prompt": f"Student {i} says", "max_new_tokens": 2})
        with lock:
            statuses.append(r.status_code)
    threads = [threading.Thread(target=student, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert statuses == [200] * 30


def test_closing_the_app_ends_its_scheduler_thread(make_app, real_model):
    import llmviz
    app = make_app()
    scheduler = app.extensions["llmviz"]["scheduler"]
    assert scheduler.alive
    close_app(app)
    assert not scheduler.alive
    with pytest.raises(RuntimeError, match="the scheduler has been shut down"):
        scheduler.submit(llmviz.Generation(real_model, "Hi", max_new_tokens=1))
    close_app(app)                                    # the fixture closes it again at teardown: harmless
