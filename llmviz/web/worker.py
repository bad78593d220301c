"""A gunicorn worker that leaves a new connection to a less busy sibling, and the core each
worker runs on (gunicorn.conf.py uses both when there are several workers).

Workers share one listening socket: the kernel wakes them all for each new connection and the
first to call accept() gets it, whatever it is already serving. When a class of 30 arrives at once
the split was uneven (18/12 and 19/11 measured with 2 workers), and since each worker computes its
own runs, the busier one decides how long the class waits. This worker first waits
ACCEPT_DELAY_S for each connection it is busy with, so the sibling serving fewer gets there
first: least-connections balancing without a proxy. Idle connections kept alive do not count.
"""
import os
import time

from gunicorn.workers.gthread import ThreadWorker

# Seconds per connection being served (more than a GIL switch interval, so that the less busy
# worker's wake-up reliably comes first), and at most ten times that for any one accept.
ACCEPT_DELAY_S = float(os.environ.get("LLMVIZ_ACCEPT_DELAY", "0.005"))


def accept_delay(busy: int) -> float:
    """Seconds to wait before accepting, for a worker busy with `busy` connections."""
    return ACCEPT_DELAY_S * min(busy, 10)


class LeastBusyWorker(ThreadWorker):
    def busy(self) -> int:
        """Connections this worker is serving (open ones minus those idling in keep-alive)."""
        return self.nr_conns - len(getattr(self, "keepalived_conns", ()))

    def accept(self, *args):
        time.sleep(accept_delay(self.busy()))
        super().accept(*args)       # the sibling may have taken it meanwhile: gunicorn ignores EAGAIN


def free_core(taken: list, n_cores: int) -> int:
    """The core for a new worker: the lowest-numbered one that the fewest live workers use
    (`taken`: their cores, None for an unpinned one). Pinned one per core, a worker's weights
    and activations stay in that core's caches instead of following it from core to core."""
    return min(range(n_cores), key=lambda core: (taken.count(core), core))

