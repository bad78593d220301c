"""The shared run store: every run in Redis, so any worker on any machine answers any run.

With `LLMVIZ_REDIS_URL` set, a run is written as it is computed (the page asks another
worker for step 0's attention while step 5 is still being computed) and read back by
whichever process gets the request. Keys, all under a prefix (default "llmviz:"):

    run:<id>              JSON: request, settings, prompt ids, status, error, timings, stats, text
    run:<id>:summaries    list: each step's compact JSON summary (what the stream sent)
    run:<id>:steps        list: each step packed (pack_step): the Step dataclass's fields as JSON,
                          its arrays (the recorder's intermediates `rec`) as float16, zeros
                          dropped, without the full logits (see pack_step); no pickle
    run:<id>:alive        exists while the worker computing the run is alive (a lease)
    run:<id>:json         once the run has ended: its JSON as GET /api/runs/<id> answers it, so
                          that reading a finished run again decodes and encodes nothing
    runs                  sorted set: run id -> time of last use (newest first for GET /api/runs)
    sizes, bytes          bytes stored per run and in total: the byte budget
    evicted               sorted set of ids dropped for the budget, so a 404 can say why

Every run key has a TTL (`LLMVIZ_RUN_TTL`), renewed on each use. As a run starts and as it
ends a Lua script (atomic on the server) drops runs unused for longer than the TTL and, while the
total is over `LLMVIZ_MAX_STORED_BYTES` or the count over `LLMVIZ_MAX_RUNS`, the least
recently used run. A Run read back is a real Run whose trace is a real Trace of real Steps
(arrays back in float32), so every detail endpoint works on it unchanged; each process keeps
the last 32 it read back. Steps are packed by packing.py. Redis unreachable: every method
raises StoreUnavailable within a few seconds (short socket timeouts, one retry), which the API
answers with 503.
"""
import dataclasses
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from llmviz.trace import Trace

from .packing import pack_step, unpack_step
from .runs import Run, StoreUnavailable

# KEYS: runs, sizes, bytes, evicted.  ARGV: prefix, now, ttl, max_bytes, max_runs.
# Drop what is past its TTL, then the least recently used while over budget (never the last one).
TRIM = """
local function drop(id)
  local base = ARGV[1] .. 'run:' .. id
  redis.call('DEL', base, base .. ':summaries', base .. ':steps', base .. ':alive', base .. ':json')
  local size = tonumber(redis.call('HGET', KEYS[2], id) or '0')
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('DECRBY', KEYS[3], size)
end
local now = tonumber(ARGV[2])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))) do drop(id) end
local evicted = 0
while redis.call('ZCARD', KEYS[1]) > 1 and (tonumber(redis.call('GET', KEYS[3]) or '0') > tonumber(ARGV[4])
                                            or redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[5])) do
  local id = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  drop(id)
  redis.call('ZADD', KEYS[4], now, id)
  evicted = evicted + 1
end
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -10001)
return evicted
"""

# KEYS: runs, sizes, bytes, run:<id>:summaries, run:<id>:steps, run:<id>:alive, run:<id>
# ARGV: id, now, ttl, lease, summary, packed step.  A run already dropped stays dropped (-> 0).
APPEND = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[4], ARGV[5])
redis.call('RPUSH', KEYS[5], ARGV[6])
local n = string.len(ARGV[5]) + string.len(ARGV[6])
redis.call('HINCRBY', KEYS[2], ARGV[1], n)
redis.call('INCRBY', KEYS[3], n)
for i = 4, 7 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('SET', KEYS[6], '1', 'EX', ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""


# -- a stored run, read back lazily ----------------------------------------------------------

class Lazy(Sequence):
    """n items, item i made by load(i) when first asked for, then kept. A stored run's Steps (read
    from Redis and unpacked) and its step summaries (parsed) are Lazy: the run's JSON needs neither,
    and a detail request only the step it shows."""

    def __init__(self, n, load):
        self.load = load
        self.items = [None] * n

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]                      # negative indices, and IndexError past the end
        if self.items[i] is None:                    # two threads may both load it: the same item
            self.items[i] = self.load(i)
        return self.items[i]


def dumps(value) -> str:
    return json.dumps(value, default=lambda o: o.item())              # NumPy scalars as numbers


@dataclasses.dataclass
class StoredTrace(Trace):
    """A Trace read back from Redis. Its steps unpack lazily (Lazy); the emitted ids come from the
    run's meta or summaries, so labelling the keys of one step unpacks no other step."""
    emitted_ids: list = dataclasses.field(default_factory=list)

    def all_ids(self):
        return list(self.prompt_ids) + self.emitted_ids


# -- the store ---------------------------------------------------------------------------------

def reason(error) -> str:
    return str(error).rstrip(".") or type(error).__name__


def redis_errors(method):
    """Turn any Redis failure (refused, timed out, out of memory, read-only) into StoreUnavailable."""
    def wrapped(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except redis.RedisError as e:
            raise StoreUnavailable(f"the run store (Redis at {self.where}) is unavailable: {reason(e)}") from None
    wrapped.__name__, wrapped.__doc__ = method.__name__, method.__doc__
    return wrapped


class RedisRunStore:
    """Runs shared by every worker through one Redis (see the module docstring). Runs computing
    in this process are also kept here as objects; runs read back are decoded once and kept in
    a small per-process LRU (`cache_runs`) until Redis says they changed."""

    kind = "redis"

    def __init__(self, url, models, max_runs=10_000, max_bytes=2 << 30, ttl=24 * 3600, prefix="llmviz:",
                 lease=30, cache_runs=32):
        self.client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2,
                                           retry=Retry(NoBackoff(), 1), health_check_interval=15)
        pool = self.client.connection_pool.connection_kwargs
        self.where = f"{pool.get('host', pool.get('path', '?'))}:{pool.get('port', '')}".rstrip(":")
        self.models = models                  # ModelRegistry: a run read back needs its model
        self.max_runs, self.max_bytes, self.ttl, self.prefix, self.lease = max_runs, max_bytes, int(ttl), prefix, lease
        self.trim = self.client.register_script(TRIM)
        self.append = self.client.register_script(APPEND)
        self.live = {}                        # run id -> Run computing in this process
        self.decoded = OrderedDict()          # run id -> (steps, status, Run) read back lately
        self.cache_runs = cache_runs
        self.lock = threading.Lock()

    def key(self, *parts) -> str:
        return self.prefix + ":".join(parts)

    def run_keys(self, run_id):
        """-> base (meta), summaries, steps, alive, json"""
        base = self.key("run", run_id)
        return base, base + ":summaries", base + ":steps", base + ":alive", base + ":json"

    def index_keys(self):
        return [self.key("runs"), self.key("sizes"), self.key("bytes"), self.key("evicted")]

    @staticmethod
    def meta(run) -> bytes:
        """The run's JSON meta; once it has ended, with its generated ids (a read of one step then
        parses no summary)."""
        return dumps({"id": run.id, "created": run.created, "request": run.request,
                      "settings": run.trace.settings, "prompt_ids": [int(i) for i in run.trace.prompt_ids],
                      "status": run.status, "error": run.error, "timings": run.trace.timings,
                      "stats": run.stats, "text": run.final_text,
                      "new_ids": None if run.status == "running" else run.new_ids()}).encode()

    @redis_errors
    def add(self, run: Run) -> Run:
        meta, now = self.meta(run), time.time()
        base, _, _, alive, _ = self.run_keys(run.id)
        runs, sizes, total, _ = self.index_keys()
        with self.client.pipeline() as p:
            p.set(base, meta, ex=self.ttl).set(alive, b"1", ex=self.lease)
            p.zadd(runs, {run.id: now}).hset(sizes, run.id, len(meta)).incrby(total, len(meta))
            p.execute()
        with self.lock:
            self.live[run.id] = run
        self.trim_now()
        return run

    @redis_errors
    def step_added(self, run, step):
        """Write the step just added to the run (its summary is run.step_summaries[-1])."""
        summary = json.dumps(run.step_summaries[-1]).encode()
        base, summaries, steps, alive, _ = self.run_keys(run.id)
        runs, sizes, total, _ = self.index_keys()
        self.append(keys=[runs, sizes, total, summaries, steps, alive, base],
                    args=[run.id, time.time(), self.ttl, self.lease, summary, pack_step(step)])

    @redis_errors
    def finished(self, run):
        """Write the final status, text and timings, and the run's JSON; the run no longer needs a
        live worker."""
        base, _, _, alive, json_key = self.run_keys(run.id)
        _, sizes, total, _ = self.index_keys()
        with self.lock:
            self.live.pop(run.id, None)
        if self.client.zscore(self.key("runs"), run.id) is None:
            return                            # dropped for the budget meanwhile: leave it dropped
        body = run.json_bytes(dumps)
        with self.client.pipeline() as p:
            p.set(base, self.meta(run), ex=self.ttl).delete(alive).set(json_key, body, ex=self.ttl)
            p.hincrby(sizes, run.id, len(body)).incrby(total, len(body))
            p.execute()
        self.trim_now()

    def trim_now(self):
        """Apply the TTL and the budget (as a run starts and as it ends: the budget may be exceeded
        meanwhile by the runs in progress)."""
        self.trim(keys=self.index_keys(), args=[self.prefix, time.time(), self.ttl, self.max_bytes, self.max_runs])

    @redis_errors
    def get(self, run_id: str):
        with self.lock:
            live = self.live.get(run_id)
        if live is not None:
            self.touch(run_id)
            return live
        base, summaries, steps, alive, json_key = self.run_keys(run_id)
        with self.client.pipeline() as p:         # read it and mark it used, in one round trip
            self.touch_commands(p.get(base).llen(steps).exists(alive), run_id)
            meta, n, is_alive, *_ = p.execute()
        if meta is None:
            return None
        meta = json.loads(meta)
        if meta["status"] == "running" and not is_alive:
            meta["status"] = "error"
            meta["error"] = ("the server process computing this run stopped before it finished "
                             "(it was restarted or killed); generate it again")
        with self.lock:
            cached = self.decoded.get(run_id)
            if cached is not None and cached[:2] == (n, meta["status"]):
                self.decoded.move_to_end(run_id)
                return cached[2]
        with self.client.pipeline() as p:         # steps are only ever appended: n of each
            texts, encoded = p.lrange(summaries, 0, n - 1).get(json_key).execute()
        run = self.rebuild(meta, texts, steps, encoded)
        with self.lock:
            self.decoded[run_id] = (n, meta["status"], run)
            while len(self.decoded) > self.cache_runs:
                self.decoded.popitem(last=False)
        return run

    def rebuild(self, meta, texts, steps_key, encoded=None) -> Run:
        """Stored parts -> a Run whose trace is a real Trace of real Steps (arrays in float32), each
        step read from `steps_key` and each summary parsed when a request first needs it; `encoded`
        is the ended run's stored JSON."""
        model = self.models.get(meta["settings"]["quantization"])
        summaries = Lazy(len(texts), lambda i: json.loads(texts[i]))
        emitted = meta.get("new_ids")
        if emitted is None or meta["status"] == "running":
            emitted = [t["id"] for summary in summaries for t in summary["emitted"]]
        steps = Lazy(len(texts), lambda i: unpack_step(self.step_blob(steps_key, i)))
        trace = StoredTrace(model, meta["settings"], meta["prompt_ids"], steps, meta["timings"], emitted)
        run = Run(trace, meta["request"], model, run_id=meta["id"], created=meta["created"])
        run.status, run.error, run.final_text, run.stats = meta["status"], meta["error"], meta["text"], meta["stats"]
        run.step_summaries = summaries
        if encoded is not None:
            run.encoded = (run.status, encoded)
        return run

    @redis_errors
    def step_blob(self, steps_key, i) -> bytes:
        blob = self.client.lindex(steps_key, i)
        if blob is None:
            raise IndexError(f"step {i} of this run is no longer stored (the run was dropped from the store to "
                             "keep within its budget); generate it again")
        return blob

    def touch(self, run_id):
        """A use: the run becomes the most recently used and its keys live another TTL."""
        with self.client.pipeline(transaction=False) as p:
            self.touch_commands(p, run_id).execute()

    def touch_commands(self, p, run_id):
        """Queue touch()'s commands on pipeline p (nothing happens to a run that is not stored)."""
        p.zadd(self.key("runs"), {run_id: time.time()}, xx=True)
        base, summaries, steps, _, json_key = self.run_keys(run_id)
        for k in (base, summaries, steps, json_key):
            p.expire(k, self.ttl)
        return p

    @redis_errors
    def was_evicted(self, run_id: str) -> bool:
        return self.client.zscore(self.key("evicted"), run_id) is not None

    @redis_errors
    def listing(self, limit=100) -> list:
        ids = [i.decode() for i in self.client.zrevrange(self.key("runs"), 0, limit - 1)]
        with self.client.pipeline(transaction=False) as p:
            for i in ids:
                base, _, steps, *_ = self.run_keys(i)
                p.get(base).llen(steps)
            values = p.execute()
        rows = []
        for meta, n in zip(values[::2], values[1::2]):
            if meta is not None:
                meta = json.loads(meta)
                rows.append({"id": meta["id"], "status": meta["status"], "prompt": meta["request"]["prompt"],
                             "settings": meta["settings"], "steps": n})
        return rows

    def missing(self, run_id: str) -> str:
        if self.was_evicted(run_id):
            return (f"run {run_id!r} was evicted: the run store keeps at most {self.max_runs} runs and "
                    f"{self.max_bytes / 2 ** 20:.0f} MiB, least recently used dropped first; generate it again")
        return (f"no run {run_id!r} in the run store; runs are kept {self.ttl / 3600:g} h after their last use, "
                "so generate it again")

    def health(self):
        """None when Redis answers, else what is wrong."""
        try:
            self.client.ping()
            return None
        except redis.RedisError as e:
            return f"the run store (Redis at {self.where}) is unreachable: {reason(e)}"

    def describe(self) -> str:
        return f"Redis at {self.where}, runs kept {self.ttl} s after their last use"

    @redis_errors
    def stored_bytes(self) -> int:
        return int(self.client.get(self.key("bytes")) or 0)

    def close(self):
        self.client.close()
