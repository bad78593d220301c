"""Continuous batching for a server: concurrent requests share decode steps.

One background thread owns the model's forward passes. Each loop iteration it
  1. admits waiting requests (up to max_batch running) and drops cancelled ones,
  2. runs the steps that cannot be batched one by one (a prefill, a run without KV cache,
     a speculative step),
  3. runs one batched decode step per model object for every other request (forward() with
     a row per request; rows at different lengths are fine, see llmviz/batching.py),
  4. hands each request its Step and retires the finished ones.
A request therefore joins the running batch at the next step and leaves when it is done
(Yu et al. 2022, "Orca: iteration-level scheduling"). Models of different quantizations
are different model objects and are batched separately.

    scheduler = Scheduler(max_batch=16)
    for step in scheduler.submit(Generation(model, GenerationRequest(prompt="Hello", max_new_tokens=20))):
        ...   # closing the iterator (or calling .cancel()) stops the generation
    scheduler.shutdown()                  # ends the thread; streams still open end too

A Generation submitted here must not be iterated elsewhere at the same time. The web app
puts a bounded FIFO line in front of this (llmviz/web/admission.py), so it never submits
more than max_batch generations at once and nobody waits here for a place in the batch.
"""
import queue
import threading

from .batching import batchable, step_together

_DONE = object()


class StepStream:
    """The Steps of one submitted Generation, as they are computed. Iterate it; close() or
    cancel() stops the generation at the next step boundary."""

    def __init__(self, scheduler, gen):
        self.scheduler = scheduler
        self.gen = gen
        self.queue = queue.Queue()
        self.cancelled = threading.Event()
        self.finished = False

    def __iter__(self):
        return self

    def __next__(self):
        if self.finished:
            raise StopIteration
        item = self.queue.get()
        if item is _DONE:
            self.finished = True
            raise StopIteration
        if isinstance(item, BaseException):
            self.finished = True
            raise item
        return item

    def cancel(self):
        self.cancelled.set()
        self.scheduler._wake()

    close = cancel


class Scheduler:
    """Runs the steps of every submitted Generation on one background thread, batching the
    decode steps of runs on the same model object (continuous batching, see the module
    docstring). submit() returns a StepStream; shutdown() stops the thread and ends every stream."""

    def __init__(self, max_batch=16):
        self.max_batch = int(max_batch)
        self._lock = threading.Condition()
        self._waiting = []                 # StepStreams not yet admitted
        self._running = []                 # StepStreams in the batch
        self._stopped = False
        self.steps_run = 0                 # batched forward passes so far (for tests and stats)
        self.largest_batch = 0
        self._thread = threading.Thread(target=self._loop, name="llmviz-scheduler", daemon=True)
        self._thread.start()

    def submit(self, gen) -> StepStream:
        """Queue a Generation; -> an iterator of its Steps (starts at the next step)."""
        stream = StepStream(self, gen)
        with self._lock:
            if self._stopped:
                raise RuntimeError("the scheduler has been shut down")
            self._waiting.append(stream)
            self._lock.notify()
        return stream

    def shutdown(self):
        """End the thread (idempotent): streams still open end, later submits raise."""
        with self._lock:
            self._stopped = True
            self._lock.notify()
        self._thread.join()

    @property
    def alive(self) -> bool:
        """True until shutdown() has ended the thread."""
        return self._thread.is_alive()

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._running) + len(self._waiting)

    def _wake(self):
        with self._lock:
            self._lock.notify()

    def _admit(self):
        """-> the streams to step now (called with the lock held)."""
        for s in self._waiting + self._running:
            if s.cancelled.is_set():
                s.gen.stop("cancelled")    # a later next() on the Generation stops too
            if s.gen.done:
                s.queue.put(_DONE)
        self._running = [s for s in self._running if not (s.cancelled.is_set() or s.gen.done)]
        self._waiting = [s for s in self._waiting if not (s.cancelled.is_set() or s.gen.done)]
        free = self.max_batch - len(self._running)
        self._running += self._waiting[:free]
        self._waiting = self._waiting[free:]
        return list(self._running)

    def _loop(self):
        while True:
            with self._lock:
                while not self._stopped and not self._running and not self._waiting:
                    self._lock.wait()
                if self._stopped:
                    for s in self._running + self._waiting:
                        s.queue.put(_DONE)
                    return
                streams = self._admit()
            try:
                self._step(streams)
            except Exception as exc:  # noqa: BLE001 - a bug here must not leave clients waiting forever
                for s in streams:
                    s.gen.stop(f"error: {exc}")
                    s.queue.put(exc)

    def _step(self, streams):
        alone = [s for s in streams if not batchable(s.gen)]
        for s in alone:
            self._run(lambda s=s: [next(s.gen)], [s])
        groups = {}
        for s in streams:
            if s not in alone and not s.gen.done:
                groups.setdefault(id(s.gen.model), []).append(s)
        for group in groups.values():
            self._run(lambda g=group: step_together([s.gen for s in g]), group)
            self.largest_batch = max(self.largest_batch, len(group))
            self.steps_run += 1

    @staticmethod
    def _run(compute, streams):
        """Compute Steps for `streams` and deliver them; an error ends those requests only."""
        try:
            steps = compute()
        except Exception as exc:   # noqa: BLE001 - reported to the request that caused it
            for s in streams:
                s.gen.stop(f"error: {exc}")
                s.queue.put(exc)
            return
        for s, step in zip(streams, steps):
            s.queue.put(step)
