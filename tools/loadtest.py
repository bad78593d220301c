"""A classroom against the server: N concurrent clients, each generating a few tokens.

    # the scaled topology: gunicorn, W workers sharing one Redis (docs/production.md has the setup)
    python tools/loadtest.py --url http://127.0.0.1:8000 --clients 30 --tokens 32 --stream \\
        --pidfile /tmp/llmviz.pid --baseline --readbacks 3 --save-runs /tmp/llmviz-runs.json
    # the same, and SIGKILL the worker serving a stream 3 s in
    python tools/loadtest.py ... --kill-worker 3
    # after a full restart of gunicorn and Redis: is every saved run still readable?
    python tools/loadtest.py --url http://127.0.0.1:8000 --read-runs /tmp/llmviz-runs.json

Bounded: at most --max-requests HTTP requests and --max-seconds of wall time, then it stops.
Loopback only: it refuses any target that does not resolve to 127.0.0.0/8 or ::1, so it can
never load someone else's server.

Each client POSTs /api/stream (--stream, as the page does) or /api/generate. A stream that has
to wait receives `queued` events with its place in line; the client notes them. A busy answer
(429/503) must carry Retry-After; the client waits that long and tries again, as a patient
student would. After its run the client reads it back --readbacks times (the run's JSON and one
attention matrix: what the page fetches), each on a new connection, so gunicorn may hand each
read to any worker; with --pidfile the report says which worker answered each read.

--baseline first runs one client alone, so the total throughput is compared with one stream
measured on the same machine a moment before. --kill-worker S sends SIGKILL, S seconds in, to
the worker that serves a stream at that moment (found through /proc), then reports how soon its
streams ended, whether their clients' next attempt succeeded, and whether gunicorn started a
new worker.

Reports: topology (/healthz, workers), answers by status, `queued` seen, latency and time to
first token, total tokens/s (and the ratio to one stream), read-backs per worker, server CPU
time and memory (RSS and PSS from /proc/<pid>/smaps_rollup). Exit status 1 on any 5xx, busy
answer without Retry-After, unanswered request (outside a killed worker), or failed read-back.
"""
import argparse
import http.client
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

PROMPTS = ["The quick brown fox", "Once upon a time, in a small village,", "The capital of France is",
           "def fibonacci(n):", "Photosynthesis is the process by which", "My favourite teacher always said"]


def loopback_target(url: str) -> tuple:
    """(host, port) of url, or SystemExit unless every address it resolves to is loopback."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"refusing {url!r}: give an http:// URL on this machine, e.g. http://127.0.0.1:8000")
    port = parts.port or 80
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)}
    except socket.gaierror as e:
        raise SystemExit(f"refusing {parts.hostname}: it does not resolve ({e})") from None
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"refusing {parts.hostname}: it resolves to {sorted(addresses)}; "
                         "this load test only runs against 127.x or localhost")
    return parts.hostname, port


class Budget:
    """The shared bound on requests and wall time."""

    def __init__(self, max_requests, max_seconds):
        self.left = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0 or time.monotonic() > self.deadline:
                return False
            self.left -= 1
            return True

    def seconds_left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.statuses = Counter()           # every answer, by status
        self.problems = []                  # 5xx, busy without Retry-After, dropped connections
        self.latencies = []                 # seconds, successful runs (first byte sent to last byte read)
        self.first_token = []               # seconds to the first step event (--stream)
        self.tokens = 0
        self.run_ids = []                   # finished runs
        self.queued = {}                    # client -> places in line it was told (--stream)
        self.unannounced_waits = []         # seconds to the run header of clients told nothing
        self.readbacks = Counter()          # (worker pid or "?", "ok" | "missing (status)" | "changed")
        self.live = {}                      # client -> local port of its open stream
        self.killed = []                    # (client, seconds from the kill to its stream's end)
        self.started = time.monotonic()
        self.last_done = None               # when the last run finished (read-backs come after)

    def add(self, status=None, problem=None, latency=None, tokens=0, first=None, run_id=None):
        with self.lock:
            if status is not None:
                self.statuses[status] += 1
            if problem:
                self.problems.append(problem)
            if latency is not None:
                self.latencies.append(latency)
                self.tokens += tokens
                self.run_ids.append(run_id)
                self.last_done = time.monotonic()
            if first is not None:
                self.first_token.append(first)


def request(host, port, method, path, body=None, timeout=600.0):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        conn.client_port = conn.sock.getsockname()[1]     # (a response that closes the connection drops .sock)
        response = conn.getresponse()
        return response, conn
    except BaseException:
        conn.close()
        raise


class StreamEnded(Exception):
    """The stream closed (or failed) before its `done` event."""


def read_stream(i, response, t0, results):
    """SSE body -> (tokens, run id, seconds to the first step); notes `queued` places."""
    tokens, run_id, first, event, done = 0, None, None, None, False
    try:
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "queued":
                    with results.lock:
                        results.queued.setdefault(i, []).append(data["position"])
                elif event == "run":
                    run_id = data["id"]
                    if i not in results.queued:
                        with results.lock:
                            results.unannounced_waits.append(time.monotonic() - t0)
                elif event == "step":
                    first = first if first is not None else time.monotonic() - t0
                    tokens += len(data["step"].get("emitted", [None]))
                elif event == "error":
                    raise RuntimeError(f"stream error event: {data}")
                elif event == "done":
                    done = True
    except (OSError, http.client.HTTPException) as e:
        raise StreamEnded(f"{type(e).__name__}: {e}") from None
    if not done:
        raise StreamEnded("closed without a done event")
    return tokens, run_id, first


def client(i, args, host, port, budget, results, kill):
    body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_new_tokens": args.tokens, "seed": i,
            "temperature": 0.7, "top_k": 50}
    path = "/api/stream" if args.stream else "/api/generate"
    while budget.take():
        t0 = time.monotonic()
        try:
            response, conn = request(host, port, "POST", path, body, timeout=budget.seconds_left() + 5)
            try:
                status = response.status
                if status == 200 and args.stream:
                    with results.lock:
                        results.live[i] = conn.client_port
                    tokens, run_id, first = read_stream(i, response, t0, results)
                else:
                    payload = json.loads(response.read() or b"null")
                    tokens, run_id, first = (len(payload["tokens"]), payload["id"], None) if status == 200 \
                        else (0, None, None)
                retry_after = response.getheader("Retry-After")
            finally:
                with results.lock:
                    results.live.pop(i, None)
                conn.close()
        except Exception as e:                       # refused, reset, timed out, truncated: not answered
            if i in kill.victim_clients:
                with results.lock:
                    results.killed.append((i, time.monotonic() - kill.at))
                    if i in results.queued:
                        results.queued[i].append(None)  # a new attempt: a new place in line
                continue                             # the student clicks again
            results.add(problem=f"client {i}: no answer ({type(e).__name__}: {e})")
            return
        latency = time.monotonic() - t0
        if status == 200:
            results.add(status, latency=latency, tokens=tokens, first=first, run_id=run_id)
            read_back(host, port, run_id, args, results)
            return
        if status in (429, 503):
            if retry_after is None:
                results.add(status, problem=f"client {i}: {status} without Retry-After")
                return
            results.add(status)
            time.sleep(min(float(retry_after), budget.seconds_left()))
            continue
        results.add(status, problem=f"client {i}: HTTP {status}" if status >= 500 else None)
        return


def read_once(host, port, path, tries=1):
    """GET path -> (worker pid, or that and a note when it had to be asked again; status; body).
    With tries=2 (--kill-worker) a read lost with the killed worker is asked once more."""
    for attempt in range(tries):
        try:
            response, conn = request(host, port, "GET", path, timeout=60)
            worker = response.getheader("X-Served-By", "?").rsplit(":", 1)[-1]           # host:pid
            status, body = response.status, response.read()
            conn.close()
        except (OSError, http.client.HTTPException):
            if attempt == tries - 1:
                raise
            continue
        return (worker + " (asked again: the first answer was lost with the killed worker)" if attempt
                else worker), status, body


def read_back(host, port, run_id, args, results):
    """Read the run back, as the page does for its views, --readbacks times on new connections."""
    first = None
    for _ in range(args.readbacks):
        for path in (f"/api/runs/{run_id}", f"/api/runs/{run_id}/steps/0/attention/0?head=0"):
            try:
                worker, status, body = read_once(host, port, path, tries=2 if args.kill_worker is not None else 1)
            except Exception as e:
                results.add(problem=f"GET {path}: no answer ({type(e).__name__})")
                continue
            if status != 200:
                outcome = f"missing ({status})"
            elif path.endswith(run_id) and first is not None and json.loads(body) != first:
                outcome = "changed"
            else:
                outcome = "ok"
            if path.endswith(run_id) and status == 200 and first is None:
                first = json.loads(body)
            with results.lock:
                results.readbacks[(worker, outcome)] += 1


# -- workers, through /proc ------------------------------------------------------------------

def children(pid: int) -> list:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        kids += [int(p) for p in text.split()]
    return kids


def serving_worker(master: int, server_port: int, client_port: int):
    """The worker pid holding the server side of our connection (127.0.0.1:client_port ->
    :server_port), found by its socket inode in /proc/net/tcp and the workers' fds; or None."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            local, remote = int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)
            if local == server_port and remote == client_port:
                inode = f[9]
    if inode is None:
        return None
    for pid in children(master):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


class Kill:
    """--kill-worker: which worker was killed, when, and the clients whose streams it served."""

    def __init__(self):
        self.at, self.pid, self.victim_clients, self.workers_before = None, None, set(), []


def killer(args, port, results, kill, budget):
    """S seconds in, SIGKILL the worker serving the first open stream found."""
    time.sleep(args.kill_worker)
    kill.workers_before = children(args.master)
    while budget.seconds_left() > 0:
        with results.lock:
            live = dict(results.live)
        serving = {i: serving_worker(args.master, port, p) for i, p in live.items()}
        victims = [pid for pid in serving.values() if pid]
        if victims:
            kill.pid = victims[0]
            kill.victim_clients = {i for i, pid in serving.items() if pid == kill.pid}
            kill.at = time.monotonic()
            os.kill(kill.pid, signal.SIGKILL)
            return
        time.sleep(0.2)


# -- memory ---------------------------------------------------------------------------

def memory(pid: int) -> dict:
    """kB fields of /proc/<pid>/smaps_rollup: Rss, Pss, Shared_Clean, Private_*, ..."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        out[name] = int(value.split()[0])
    return out


def memory_report(master: int) -> list:
    rows = []
    for role, pid in [("master", master)] + [("worker", p) for p in children(master)]:
        m = memory(pid)
        # file-backed pages (the memory-mapped weights) can be shared; anonymous ones (traces,
        # KV caches, Python objects) belong to this process. "shared" counts pages that some
        # other process maps right now (another worker, or any process using the same weights).
        shared = m.get("Shared_Clean", 0) + m.get("Shared_Dirty", 0)
        mb = {k: v * 1024 / 1e6 for k, v in m.items()}     # /proc counts KiB; SI MB like the rest of llmviz
        rows.append(f"  {role:6} pid {pid:>7}: RSS {mb['Rss']:7.1f} MB = file-backed "
                    f"{mb['Rss'] - mb['Anonymous']:6.1f} MB + anonymous {mb['Anonymous']:7.1f} MB;"
                    f"   PSS {mb['Pss']:7.1f} MB   mapped by others too {shared * 1024 / 1e6:6.1f} MB")
    return rows


def cpu_by_process(master: int) -> dict:
    """pid -> user + system CPU seconds so far (/proc/<pid>/stat) of the gunicorn master and its workers."""
    seconds = {}
    for pid in [master] + children(master):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:                                      # a worker that was just killed
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime, stime
    return seconds


def cpu_seconds(master: int, since=None) -> float:
    """CPU seconds of the server's processes since `since` (a cpu_by_process() taken earlier); a
    process gone meanwhile (a killed worker) is left out, one started meanwhile counts in full."""
    now, since = cpu_by_process(master), since or {}
    return sum(t - since.get(pid, 0.0) for pid, t in now.items())


def attempts(queued: dict) -> list:
    """The places told to each client, one list per attempt (None separates a client's attempts)."""
    lists = []
    for places in queued.values():
        lists.append([])
        for p in places:
            if p is None:
                lists.append([])
            else:
                lists[-1].append(p)
    return lists


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# -- one wave of clients ------------------------------------------------------------------------

def wave(args, host, port, n, kill_after=None):
    """n clients at once -> (Results, wall seconds, clients unfinished, Kill)."""
    budget, results, kill = Budget(args.max_requests, args.max_seconds), Results(), Kill()
    threads = [threading.Thread(target=client, args=(i, args, host, port, budget, results, kill), daemon=True)
               for i in range(n)]
    if kill_after is not None:
        threads.append(threading.Thread(target=killer, args=(args, port, results, kill, budget), daemon=True))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=budget.seconds_left() + 10)
    return results, time.monotonic() - t0, sum(t.is_alive() for t in threads[:n]), kill


def topology(host, port, master) -> str:
    try:
        response, conn = request(host, port, "GET", "/healthz", timeout=10)
        health = json.loads(response.read())
        conn.close()
    except Exception as e:
        return f"/healthz did not answer ({type(e).__name__})"
    workers = (f"{len(children(master))} workers (gunicorn master {master})" if master
               else "workers unknown (no --pidfile)")
    return f"{workers}, run store: {health.get('store', health)}"


def read_saved_runs(host, port, path) -> int:
    ids = json.loads(Path(path).read_text())
    found = Counter()
    for run_id in ids:
        for url in (f"/api/runs/{run_id}", f"/api/runs/{run_id}/steps/0/attention/0?head=0"):
            response, conn = request(host, port, "GET", url, timeout=60)
            response.read()
            conn.close()
            found["found" if response.status == 200 else f"missing ({response.status})"] += 1
    print(f"read back the {len(ids)} runs saved in {path} (run JSON + one attention matrix each): {dict(found)}")
    return 0 if set(found) == {"found"} else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=32, help="max_new_tokens per run")
    parser.add_argument("--stream", action="store_true", help="use /api/stream (and report time to first token)")
    parser.add_argument("--max-requests", type=int, default=3000, help="bound on generation requests, retries included")
    parser.add_argument("--max-seconds", type=float, default=600, help="bound on wall time")
    parser.add_argument("--pidfile", help="gunicorn's pid file: workers, memory, which worker answered")
    parser.add_argument("--baseline", action="store_true", help="first measure one client alone")
    parser.add_argument("--readbacks", type=int, default=1, help="times each finished run is read back")
    parser.add_argument("--kill-worker", type=float, metavar="S", help="SIGKILL a worker serving a stream S s in")
    parser.add_argument("--save-runs", help="write the finished runs' ids to this JSON file")
    parser.add_argument("--read-runs", help="only read back the runs saved in this file, then exit")
    args = parser.parse_args(argv)
    host, port = loopback_target(args.url)
    if args.read_runs:
        return read_saved_runs(host, port, args.read_runs)
    args.master = int(Path(args.pidfile).read_text()) if args.pidfile else None
    if args.kill_worker is not None and not (args.master and args.stream):
        raise SystemExit("--kill-worker needs --pidfile and --stream")

    mode = "stream" if args.stream else "generate"
    print(f"llmviz load test against {args.url}: {topology(host, port, args.master)}")
    base_rate = None
    if args.baseline:
        cpu_before = cpu_by_process(args.master) if args.master else None
        one, _, _, _ = wave(argparse.Namespace(**{**vars(args), "readbacks": 0}), host, port, 1)
        wall1 = (one.last_done or time.monotonic()) - one.started
        base_rate = one.tokens / wall1 if wall1 else float("nan")
        per_cpu = (f"; {one.tokens / cpu_seconds(args.master, cpu_before):.1f} tokens per CPU-second"
                   if args.master else "")
        print(f"  baseline, 1 client alone x {args.tokens} tokens ({mode}): {one.tokens} tokens in {wall1:.2f} s "
              f"= {base_rate:.1f} tokens/s{per_cpu}")
    cpu0 = cpu_by_process(args.master) if args.master else None
    r, wall, unfinished, kill = wave(args, host, port, args.clients, args.kill_worker)

    done = len(r.latencies)
    print(f"  {args.clients} clients at once x {args.tokens} tokens ({mode}): {wall:.1f} s wall")
    print(f"  answers by status: {dict(sorted(r.statuses.items()))}; refused (429): {r.statuses.get(429, 0)}")
    print(f"  runs completed: {done}/{args.clients}; clients unfinished at the bound: {unfinished}")
    if args.stream:
        firsts = Counter(places[0] for places in r.queued.values())
        print(f"  waited in line and were told so (`queued`): {len(r.queued)} clients; first places told: "
              f"{dict(sorted(firsts.items()))}; places only ever went down: "
              f"{all(p == sorted(p, reverse=True) for p in attempts(r.queued))}")
        print(f"  clients told nothing: {len(r.unannounced_waits)}, their run began after at most "
              f"{max(r.unannounced_waits, default=0):.2f} s (a long time here would be an unannounced wait)")
    print(f"  latency of successful runs: p50 {percentile(r.latencies, 0.5):.2f} s, "
          f"p95 {percentile(r.latencies, 0.95):.2f} s, max {max(r.latencies, default=float('nan')):.2f} s")
    if r.first_token:
        print(f"  time to first token: p50 {percentile(r.first_token, 0.5):.2f} s, "
              f"p95 {percentile(r.first_token, 0.95):.2f} s")
    generating = (r.last_done or time.monotonic()) - r.started     # the read-backs after it do not count
    rate = r.tokens / generating if generating else float("nan")
    ratio = f" = {rate / base_rate:.2f}x one stream alone" if base_rate else ""
    print(f"  generated tokens: {r.tokens} in {generating:.1f} s (first request to last run done); "
          f"total throughput {rate:.1f} tokens/s{ratio}")
    if args.readbacks:
        by_worker = Counter()
        for (worker, outcome), n in r.readbacks.items():
            by_worker[f"worker {worker}: {outcome}"] += n
        print(f"  read-backs ({args.readbacks}x per run: its JSON and one attention matrix, new connection "
              f"each): {dict(sorted(by_worker.items()))}")
    if kill.pid:
        ends = [s for _, s in r.killed]
        after = children(args.master)
        print(f"  SIGKILL worker {kill.pid} {args.kill_worker:g} s in: {len(kill.victim_clients)} streams were on it; "
              f"{len(ends)} ended {max(ends, default=0):.2f} s or sooner after the kill, and their clients' next "
              f"attempt {'succeeded' if not unfinished and done == args.clients else 'did NOT all succeed'}")
        print(f"  workers before {sorted(kill.workers_before)}, after {sorted(after)}: "
              f"{'replaced' if len(after) == len(kill.workers_before) and kill.pid not in after else 'NOT replaced'}")
    elif args.kill_worker is not None:
        r.problems.append("--kill-worker: no stream was open to kill its worker")
    if args.master:
        cpu = cpu_seconds(args.master, cpu0)
        if kill.pid:
            print("  (the killed worker's CPU time is gone with it: not counted below)")
        print(f"  server CPU time: {cpu:.1f} s ({cpu / wall:.2f} cores busy on average; "
              f"{r.tokens / cpu if cpu else float('nan'):.1f} tokens per CPU-second: "
              "less sensitive than tokens/s to other load on the machine)")
        print("  resident memory after the test:")
        print("\n".join(memory_report(args.master)))
    if args.save_runs:
        Path(args.save_runs).write_text(json.dumps(r.run_ids))
        print(f"  saved {len(r.run_ids)} run ids to {args.save_runs} (read them back with --read-runs)")
    for p in r.problems[:20]:
        print(f"  PROBLEM {p}")
    failed_reads = sum(n for (_, outcome), n in r.readbacks.items() if outcome != "ok")
    if failed_reads:
        r.problems.append(f"{failed_reads} read-backs of finished runs failed or differed")
    if done < args.clients:
        r.problems.append(f"{args.clients - done} clients got no run within the bounds (budget or time)")
    ok = not r.problems and not unfinished and all(s < 500 for s in r.statuses)
    print("  every request answered, no 5xx, every run read back" if ok else f"  FAILED: {len(r.problems)} problems")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
