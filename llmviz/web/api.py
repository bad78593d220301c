"""The JSON API (blueprint mounted at /api): generate, stream, and read runs lazily.

    POST /api/generate                 the whole run as JSON
    POST /api/stream                   the same run as Server-Sent Events, one event per step
    GET  /api/runs, /api/runs/<id>     run list; one run as the page shows it
    GET  /api/runs/<id>/steps/<s>[/attention/<l> | /embedding | /feedforward/<l> | /logit-lens | /overview]
    GET  /api/model                    model card, weight formats, draft sources, request fields and limits
    POST /api/batch                    several prompts generated together (when the engine has it)

A generation request beyond `LLMVIZ_MAX_ACTIVE` waits in line (admission.py): a stream
gets a `queued` event with its place at once and whenever it moves up; only a full line
answers 429. docs/api.md documents every field.
"""
import json

from flask import Blueprint, Response, current_app, jsonify, request

import llmviz

from .admission import LineFull
from .errors import ApiError, error_body
from .facts import model_card, page_facts
from .limits import closing
from .runs import Run, StoreUnavailable
from .validation import Limits, batch_settings, generate_settings

bp = Blueprint("api", __name__)

HEARTBEAT_S = 5       # a waiting stream writes this often, so that a client that left is noticed


def ext():
    """The app's shared objects: {"models": ModelRegistry, "runs": a run store, "admission", "scheduler"}."""
    return current_app.extensions["llmviz"]


def computed_steps(gen, scheduler):
    """The steps of one generation, as they are computed, within its time limit.

    With the app's continuous-batching scheduler (the default) concurrent runs share
    decode steps; without it each run is computed in its request's own thread.
    """
    steps = scheduler.submit(gen) if scheduler is not None else iter(gen)
    return closing(steps)


def json_body():
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "send a JSON object with Content-Type: application/json, "
                            "e.g. {\"prompt\": \"The quick brown fox\"}")
    return body


def new_run(settings) -> Run:
    model = ext()["models"].get(settings["quantization"])
    text = model.tokenizer.apply_chat_template(settings["prompt"]) if settings["chat"] else settings["prompt"]
    kwargs = {"max_new_tokens": settings["max_new_tokens"], "temperature": settings["temperature"],
              "top_k": settings["top_k"], "top_p": settings["top_p"], "seed": settings["seed"],
              "trace": True, "kv_cache": settings["kv_cache"], "forced_ids": settings["forced_ids"],
              "time_limit_s": current_app.config["LLMVIZ_RUN_SECONDS"]}
    if settings["speculative"]:
        kwargs.update(speculative=settings["speculative"], num_draft_tokens=settings["num_draft_tokens"])
    try:
        gen = llmviz.Generation(model, llmviz.GenerationRequest(prompt=text, **kwargs))
    except ValueError as e:                      # empty after tokenizing, or longer than the context
        raise ApiError(400, str(e), "prompt") from None
    return Run(gen.trace, {**settings, "prompt_text": text, "seed": gen.seed}, model, gen)


def parsed_settings(parse=generate_settings):
    """The raw body -> checked settings, or an ApiError naming the field (validation.py)."""
    return parse(request.content_type, request.get_data(), ext()["models"].get("fp32"),
                 Limits.from_config(current_app.config))


def enter_line():
    """A ticket: a slot now, or a place in line. 503 if the run store is down (rather than after
    the wait), 429 only when the line is full."""
    problem = ext()["runs"].health()
    if problem:
        raise StoreUnavailable(problem)
    admission = ext()["admission"]
    try:
        return admission.enter()
    except LineFull:
        raise ApiError(429, f"the server is full: {admission.max_active} runs are computing and "
                            f"{admission.max_queue} are waiting in line; try again in a moment") from None


def wait_too_long(seconds) -> str:
    return f"no slot became free within the server's limit of {seconds} s; try again in a moment"


def record_end(store, run, log):
    """Store a run's final state; a store that went away meanwhile is only logged (the client
    already has, or is getting, its answer)."""
    try:
        store.finished(run)
    except StoreUnavailable as e:
        log.warning("run %s (%s) not stored: %s", run.id, run.status, e)


@bp.post("/generate")
def generate():
    settings = parsed_settings()
    run = new_run(settings)
    ticket = enter_line()
    store, seconds = ext()["runs"], current_app.config["LLMVIZ_RUN_SECONDS"]
    steps, added = None, False
    try:
        if not ticket.wait_admitted(seconds):
            raise ApiError(503, wait_too_long(seconds))
        store.add(run)
        added = True
        steps = computed_steps(run.gen, ext()["scheduler"])
        for step in steps:
            run.add_step(step)
            store.step_added(run, step)
        run.finish()
        store.finished(run)
    except Exception as e:
        if added:                                # GET /api/runs/<id> then says what happened
            run.status, run.error = "error", str(e)
            record_end(store, run, current_app.logger)
        raise
    finally:
        getattr(steps, "close", lambda: None)()  # an error midway: stop computing
        ticket.leave()
    return jsonify(run.to_json())


def sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def line_events(ticket):
    """While the ticket waits: `queued` with the number of requests ahead, at once and whenever it
    changes, and an SSE comment every HEARTBEAT_S (a write to a client that left fails, which
    ends this generator and so leaves the line). Returns when admitted. A stream waits as long
    as the line moves: its client sees its place and may leave, and every run ahead of it is
    bounded by the run time limit."""
    ahead = ticket.ahead
    while ahead is not None:
        yield sse("queued", {"position": ahead})
        last = ahead
        while ahead == last:
            ahead = ticket.wait(last, HEARTBEAT_S)
            if ahead == last:
                yield ": waiting\n\n"


@bp.post("/stream")
def stream():
    settings = parsed_settings()
    run = new_run(settings)                      # a bad request is a 400 before anything is sent
    ticket = enter_line()
    store, log, scheduler = ext()["runs"], current_app.logger, ext()["scheduler"]

    def events():
        steps, added = None, False
        try:
            yield from line_events(ticket)
            store.add(run)
            added = True
            steps = computed_steps(run.gen, scheduler)
            yield sse("run", run.header())
            for step in steps:
                summary = run.add_step(step)
                store.step_added(run, step)
                yield sse("step", {"step": summary, "text": run.text()})
            run.finish()
            store.finished(run)
            yield sse("done", {"id": run.id, "status": run.status, "text": run.text(),
                               "timings": run.trace.timings, "stats": run.stats})
        except GeneratorExit:                    # the browser went away: stop computing (or leave the line)
            if added:
                run.status = "stopped"
                record_end(store, run, log)
            raise
        except StoreUnavailable as e:
            log.warning("run %s: %s", run.id, e)
            run.status, run.error = "error", str(e)
            yield sse("error", error_body(503, f"{e}; try again in a moment"))
        except Exception as e:
            log.exception("run %s failed", run.id)
            run.status, run.error = "error", str(e)
            if added:
                record_end(store, run, log)
            yield sse("error", error_body(500, f"the generation failed: {e}"))
        finally:
            getattr(steps, "close", lambda: None)()
            ticket.leave()

    return Response(events(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.post("/batch")
def batch():
    settings = parsed_settings(batch_settings)
    from .batch import run_batch
    ticket = enter_line()
    seconds = current_app.config["LLMVIZ_RUN_SECONDS"]
    try:
        if not ticket.wait_admitted(seconds):
            raise ApiError(503, wait_too_long(seconds))
        return jsonify(run_batch(ext()["models"].get(settings["quantization"]), settings, ext()["runs"]))
    finally:
        ticket.leave()


def find_run(run_id) -> Run:
    store = ext()["runs"]
    run = store.get(run_id)
    if run is None:
        raise ApiError(404, store.missing(run_id), "run")
    return run


def detail(run_id, fn):
    """Call a lazy trace accessor, turning a bad step or layer into a 404 with the reason."""
    run = find_run(run_id)
    try:
        return jsonify(fn(run.trace))
    except IndexError as e:
        field = next((f for f in ("step", "layer", "head") if str(e).startswith(f)), None)
        raise ApiError(404, str(e), field) from None


@bp.get("/runs")
def list_runs():
    return jsonify({"runs": ext()["runs"].listing()})


@bp.get("/runs/<run_id>")
def get_run(run_id):
    return Response(find_run(run_id).json_bytes(current_app.json.dumps), mimetype="application/json")


@bp.get("/runs/<run_id>/steps/<int:step>")
def get_step(run_id, step):
    run = find_run(run_id)
    if not 0 <= step < len(run.step_summaries):
        raise ApiError(404, f"step {step} does not exist (this run has {len(run.step_summaries)} steps)", "step")
    return jsonify(run.step_summaries[step])


@bp.get("/runs/<run_id>/steps/<int:step>/attention/<int:layer>")
def attention(run_id, step, layer):
    """All heads by default; ?head=h for one head (the matrices of a long prompt are large)."""
    head = request.args.get("head", type=int)

    def fn(t):
        out = t.attention(step, layer)
        if head is not None:
            if not 0 <= head < len(out["probs"]):
                raise IndexError(f"head {head} does not exist (the model has {len(out['probs'])})")
            out = {**out, "head": head, "probs": [out["probs"][head]]}
        return out
    return detail(run_id, fn)


@bp.get("/runs/<run_id>/steps/<int:step>/embedding")
def embedding(run_id, step):
    return detail(run_id, lambda t: t.embedding(step))


@bp.get("/runs/<run_id>/steps/<int:step>/feedforward/<int:layer>")
def feedforward(run_id, step, layer):
    def fn(t):
        if not 0 <= layer < t.model.config.n_layers:
            raise IndexError(f"layer {layer} does not exist (the model has {t.model.config.n_layers})")
        return t.feedforward(step, layer)
    return detail(run_id, fn)


@bp.get("/runs/<run_id>/steps/<int:step>/logit-lens")
def logit_lens(run_id, step):
    return detail(run_id, lambda t: t.logit_lens(step))


@bp.get("/model")
def model():
    """The boot JSON's facts (facts.page_facts), with `model` the card for ?quantization=."""
    limits = Limits.from_config(current_app.config)
    facts = page_facts(ext()["models"].get("fp32"), limits)
    quant = request.args.get("quantization", "fp32")
    names = facts["fields"]["quantization"]["choices"]
    if quant not in names:
        raise ApiError(400, f"quantization must be one of {', '.join(names)}", "quantization")
    card = model_card(ext()["models"].get(quant))
    return jsonify({**card, **facts, "model": card, "limits": limits.to_json(),
                    "loaded_quantizations": ext()["models"].loaded()})


@bp.get("/runs/<run_id>/steps/<int:step>/overview")
def overview(run_id, step):
    """One step as the overview picture draws it (llmviz/overview.py); ?layer=l picks the attention arcs."""
    from llmviz.overview import step_overview
    run = find_run(run_id)                       # once: with the Redis store a look-up is a round trip
    layer = request.args.get("layer", 0, type=int)
    if not 0 <= step < len(run.step_summaries):
        raise ApiError(404, f"step {step} does not exist (this run has {len(run.step_summaries)} steps)", "step")
    try:
        return jsonify(step_overview(run.trace, run.step_summaries[step], run.model, layer))
    except IndexError as e:                      # the layer (the step is checked above)
        raise ApiError(404, str(e), "layer") from None
