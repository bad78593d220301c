"""Per-run state: each run owns its Generation (KV cache, RNG, trace), never the model.

The store is a bounded LRU keyed by run id, safe to use from the threads of the
Flask dev server. It also counts runs that are still computing, so a busy
server answers 429 instead of queueing work on a 2-core machine.
"""
import threading
import time
import uuid
from collections import OrderedDict

from llmviz.generate import generated_text
from llmviz.trace import token_dict

from .facts import run_model
from .limits import trace_nbytes


class Run:
    def __init__(self, trace, request: dict, model, gen=None):
        self.id = uuid.uuid4().hex[:12]
        self.trace = trace                # the record every view reads
        self.gen = gen                    # the Generation computing it (None for a batch member)
        self.request = request            # the parsed settings, echoed back for permalinks and export
        self.model = model
        self.created = time.time()
        self.status = "running"           # running | done | stopped | error
        self.error = None
        self.step_summaries = []          # compact JSON per step, computed once as each step arrives
        self.result = None

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
        self.result = result if result is not None else self.gen.result()
        self.status = "done"

    def new_ids(self) -> list:
        return [i for s in self.trace.steps for i in s.emitted]

    def new_tokens(self) -> list:
        return [token_dict(self.model.tokenizer, i) for i in self.new_ids()]

    def text(self) -> str:
        if self.result is not None:
            return self.result.text
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
                "timings": self.trace.timings, "stats": getattr(self.result, "stats", {}) or {},
                "steps": list(self.step_summaries)}


class RunStore:
    def __init__(self, max_runs=24, max_active=4, max_bytes=None):
        self.max_runs = max_runs
        self.max_active = max_active
        self.max_bytes = max_bytes        # trace bytes of stored runs; checked as each run is added
        self._runs = OrderedDict()
        self._evicted = OrderedDict()     # ids of dropped runs (bounded), so a 404 can say why
        self._sizes = {}                  # run id -> trace bytes, for finished runs
        self._active = 0
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

    def list(self) -> list:
        with self._lock:
            return list(reversed(self._runs.values()))

    def try_start(self) -> bool:
        """Reserve a slot for a computing run; False when the server is at its limit."""
        with self._lock:
            if self._active >= self.max_active:
                return False
            self._active += 1
            return True

    def release(self):
        with self._lock:
            self._active -= 1
