"""Per-run state, and the in-memory run store (the default; `redis_store.py` is the shared one).

Each run owns its Generation (KV cache, RNG, trace), never the model. A store keeps runs by
id for the page's later requests (the run's JSON twin and the lazy detail views). Every
store has the same methods, called by the API as a run goes along:

    store.add(run)                      the run was admitted and starts computing
    store.step_added(run, step)         after run.add_step(step)
    store.finished(run)                 its status is final (done, stopped, error)
    store.get(run_id) -> Run | None     a Run whose trace every detail endpoint can read
    store.listing() -> [dict]           newest first, for GET /api/runs
    store.missing(run_id) -> str        the 404 message: evicted, or never here
    store.health() -> None | str        what is wrong, if anything (GET /healthz)
    store.close()
A store that cannot be reached raises StoreUnavailable (answered 503 with Retry-After).
"""
import threading
import time
import uuid
from collections import OrderedDict

from llmviz.generate import generated_text
from llmviz.model import run_model
from llmviz.trace import token_dict

from .limits import trace_nbytes


class StoreUnavailable(Exception):
    """The run store cannot be reached (the API answers 503 with Retry-After)."""


class Run:
    """One generation as the page sees it: the trace every view reads, the request that made
    it, a compact JSON summary per step (made once, as the step arrives) and its outcome.
    `gen` is the Generation computing it, or None (a batch member, or a run read back from
    a shared store); a store may rebuild a Run from its stored parts (`redis_store.py`)."""

    def __init__(self, trace, request: dict, model, gen=None, run_id=None, created=None):
        self.id = run_id or uuid.uuid4().hex[:12]
        self.trace = trace                # the record every view reads
        self.gen = gen                    # the Generation computing it (None for a batch member)
        self.request = request            # the parsed settings, echoed back for permalinks and export
        self.model = model
        self.created = created or time.time()
        self.status = "running"           # running | done | stopped | error
        self.error = None
        self.step_summaries = []          # compact JSON per step, computed once as each step arrives
        self.final_text = None            # the decoded text once finished (end-of-turn token dropped)
        self.stats = {}                   # e.g. speculative-decoding acceptance
        self.encoded = None               # (status, to_json() encoded) once the run has ended

    def add_step(self, step) -> dict:
        tok = self.model.tokenizer
        summary = step.summary(tok, self.model.config.n_layers)
        spec = summary.get("speculative")
        if spec:                          # the page shows draft tokens as text, not ids
            spec["draft"] = [{**token_dict(tok, d["token"]), "accepted": d["accepted"]} for d in spec["decisions"]]
            spec["final"] = token_dict(tok, spec["final_token"])
        self.step_summaries.append(summary)
        return summary

    def finish(self, result=None):
        result = result if result is not None else self.gen.result()
        self.final_text, self.stats = result.text, result.stats or {}
        self.status = "done"

    def new_ids(self) -> list:
        """The generated token ids of the steps summarized so far (no step's arrays are touched)."""
        return [t["id"] for s in self.step_summaries for t in s["emitted"]]

    def new_tokens(self) -> list:
        return [token_dict(self.model.tokenizer, i) for i in self.new_ids()]

    def text(self) -> str:
        if self.final_text is not None:
            return self.final_text
        return generated_text(self.model.tokenizer, self.new_ids())

    def header(self) -> dict:
        """What the page needs before the first step: the run id, model card and prompt tokens."""
        trace = self.trace
        tok = self.model.tokenizer
        return {
            "id": self.id, "status": self.status, "request": self.request,
            "model": run_model(self.model),
            "settings": trace.settings,
            "prompt_text": self.request["prompt_text"],
            "prompt_tokens": [token_dict(tok, i) for i in trace.prompt_ids],
        }

    def to_json(self) -> dict:
        """The whole run as the page shows it (GET /api/runs/<id>)."""
        return {**self.header(), "error": self.error, "tokens": self.new_tokens(), "text": self.text(),
                "timings": self.trace.timings, "stats": self.stats, "steps": list(self.step_summaries)}

    def json_bytes(self, dumps) -> bytes:
        """to_json() encoded with `dumps`. An ended run no longer changes, so it is encoded once
        (a class reads each finished run several times, each read a ~150 KB JSON)."""
        if self.encoded is not None and self.encoded[0] == self.status:
            return self.encoded[1]
        body = dumps(self.to_json()).encode()
        if self.status != "running":
            self.encoded = (self.status, body)
        return body

    def listing(self) -> dict:
        """One row of GET /api/runs."""
        return {"id": self.id, "status": self.status, "prompt": self.request["prompt"],
                "settings": self.trace.settings, "steps": len(self.step_summaries)}


class RunStore:
    """The runs of this process, in memory: a bounded LRU by id (at most `max_runs` runs and
    `max_bytes` of trace arrays; the least recently used go first), safe to use from the
    request threads. Nothing here is shared with other processes or survives a restart: with
    several workers use the Redis store (`LLMVIZ_REDIS_URL`, redis_store.py)."""

    kind = "memory"

    def __init__(self, max_runs=24, max_bytes=None):
        self.max_runs = max_runs
        self.max_bytes = max_bytes        # trace bytes of stored runs; checked as each run is added
        self._runs = OrderedDict()
        self._evicted = OrderedDict()     # ids of dropped runs (bounded), so a 404 can say why
        self._sizes = {}                  # run id -> trace bytes, for finished runs
        self._lock = threading.Lock()

    def add(self, run: Run) -> Run:
        with self._lock:
            self._runs[run.id] = run
            while len(self._runs) > self.max_runs or (
                    self.max_bytes and len(self._runs) > 1 and self._nbytes() > self.max_bytes):
                old, _ = self._runs.popitem(last=False)
                self._sizes.pop(old, None)
                self._evicted[old] = True
                if len(self._evicted) > 10_000:
                    self._evicted.popitem(last=False)
        return run

    def step_added(self, run, step):
        """Nothing to do: the run's trace is the stored one."""

    def finished(self, run):
        """Nothing to do: the run object is the stored one."""

    def _nbytes(self) -> int:
        """Trace bytes of the stored runs; a finished run's size is measured once."""
        total = 0
        for run_id, run in self._runs.items():
            size = self._sizes.get(run_id)
            if size is None:
                size = trace_nbytes(run.trace)
                if run.status != "running":
                    self._sizes[run_id] = size
            total += size
        return total

    def was_evicted(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._evicted

    def get(self, run_id: str):
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                self._runs.move_to_end(run_id)
            return run

    def listing(self) -> list:
        with self._lock:
            runs = list(reversed(self._runs.values()))
        return [r.listing() for r in runs]

    def missing(self, run_id: str) -> str:
        """The 404 message for a run this store does not have."""
        if self.was_evicted(run_id):
            return (f"run {run_id!r} was evicted: this server keeps only the {self.max_runs} most recently used "
                    "runs (and a memory budget for their traces); generate it again")
        return (f"no run {run_id!r} on this server; runs live in memory and only the "
                f"last {self.max_runs} are kept, so generate it again")

    def health(self):
        return None

    def describe(self) -> str:
        return f"in memory, at most {self.max_runs} runs"

    def close(self):
        pass
