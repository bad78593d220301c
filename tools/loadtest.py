"""A classroom against the production server: N concurrent clients, each generating a few tokens.

    python tools/loadtest.py --url http://127.0.0.1:8000 --clients 30 --tokens 32 --pidfile /tmp/gunicorn.pid

Bounded: at most --max-requests HTTP requests and --max-seconds of wall time, then it stops.
Loopback only: it refuses any target that does not resolve to 127.0.0.0/8 or ::1, so it can
never load someone else's server.

Each client POSTs /api/generate (or /api/stream with --stream). A busy answer (429/503) must
carry Retry-After; the client waits that long and tries again, as a patient student would.
After a run succeeds the client reads it back (GET /api/runs/<id>), which is what the page
does for every detail view: a miss there means the run lived in another worker.

Reports: answers by status, connections dropped, p50/p95 latency of successful runs, total
generated tokens per second, the server's CPU time, and the resident memory (RSS and PSS from /proc/<pid>/smaps_rollup)
of the gunicorn master and workers after the test. Exit status 1 if any request got a 5xx,
a busy answer without Retry-After, or no answer at all.
"""
import argparse
import http.client
import ipaddress
import json
import os
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
        self.runs_found = Counter()         # GET /api/runs/<id> after success: found / missing

    def add(self, status=None, problem=None, latency=None, tokens=0, first=None):
        with self.lock:
            if status is not None:
                self.statuses[status] += 1
            if problem:
                self.problems.append(problem)
            if latency is not None:
                self.latencies.append(latency)
                self.tokens += tokens
            if first is not None:
                self.first_token.append(first)


def request(host, port, method, path, body=None, timeout=600.0):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        return response, conn
    except BaseException:
        conn.close()
        raise


def read_stream(response, t0):
    """SSE body -> (tokens, run id, seconds to the first step)."""
    tokens, run_id, first, event = 0, None, None, None
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
            if event == "run":
                run_id = data["id"]
            elif event == "step":
                first = first if first is not None else time.monotonic() - t0
                tokens += len(data["step"].get("emitted", [None]))
            elif event == "error":
                raise RuntimeError(f"stream error event: {data}")
    return tokens, run_id, first


def client(i, args, host, port, budget, results):
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
                    tokens, run_id, first = read_stream(response, t0)
                else:
                    payload = json.loads(response.read() or b"null")
                    tokens, run_id, first = (len(payload["tokens"]), payload["id"], None) if status == 200 \
                        else (0, None, None)
                retry_after = response.getheader("Retry-After")
            finally:
                conn.close()
        except Exception as e:                       # refused, reset, timed out, truncated: not answered
            results.add(problem=f"client {i}: no answer ({type(e).__name__}: {e})")
            return
        latency = time.monotonic() - t0
        if status == 200:
            results.add(status, latency=latency, tokens=tokens, first=first)
            check_run(host, port, run_id, results)
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


def check_run(host, port, run_id, results):
    """Read the run back, as the page does for every detail view."""
    try:
        response, conn = request(host, port, "GET", f"/api/runs/{run_id}", timeout=30)
        status = response.status
        response.read()
        conn.close()
    except Exception as e:
        results.add(problem=f"GET /api/runs/{run_id}: no answer ({type(e).__name__})")
        return
    with results.lock:
        results.runs_found["found" if status == 200 else f"missing ({status})"] += 1


# -- memory ---------------------------------------------------------------------------

def children(pid: int) -> list:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        kids += [int(p) for p in text.split()]
    return kids


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
        rows.append(f"  {role:6} pid {pid:>7}: RSS {m['Rss'] / 1024:7.1f} MB = file-backed "
                    f"{(m['Rss'] - m['Anonymous']) / 1024:6.1f} MB + anonymous {m['Anonymous'] / 1024:7.1f} MB;"
                    f"   PSS {m['Pss'] / 1024:7.1f} MB   mapped by others too {shared / 1024:6.1f} MB")
    return rows


def cpu_seconds(master: int) -> float:
    """User + system CPU time of the gunicorn master and its workers so far (/proc/<pid>/stat)."""
    total = 0
    for pid in [master] + children(master):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])            # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=32, help="max_new_tokens per run")
    parser.add_argument("--stream", action="store_true", help="use /api/stream (and report time to first token)")
    parser.add_argument("--max-requests", type=int, default=3000, help="bound on generation requests, retries included")
    parser.add_argument("--max-seconds", type=float, default=600, help="bound on wall time")
    parser.add_argument("--pidfile", help="gunicorn's pid file, to report the master's and workers' memory")
    args = parser.parse_args(argv)
    host, port = loopback_target(args.url)

    master = int(Path(args.pidfile).read_text()) if args.pidfile else None
    cpu0 = cpu_seconds(master) if master else None
    budget, results = Budget(args.max_requests, args.max_seconds), Results()
    threads = [threading.Thread(target=client, args=(i, args, host, port, budget, results), daemon=True)
               for i in range(args.clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=budget.seconds_left() + 10)
    wall = time.monotonic() - t0
    unfinished = sum(t.is_alive() for t in threads)

    r = results
    done = len(r.latencies)
    print(f"{args.clients} clients x {args.tokens} tokens against {args.url} "
          f"({'stream' if args.stream else 'generate'}): {wall:.1f} s wall")
    print(f"  answers by status: {dict(sorted(r.statuses.items()))}")
    print(f"  runs completed: {done}/{args.clients}; clients unfinished at the bound: {unfinished}")
    print(f"  latency of successful runs: p50 {percentile(r.latencies, 0.5):.2f} s, "
          f"p95 {percentile(r.latencies, 0.95):.2f} s, max {max(r.latencies, default=float('nan')):.2f} s")
    if r.first_token:
        print(f"  time to first token: p50 {percentile(r.first_token, 0.5):.2f} s, "
              f"p95 {percentile(r.first_token, 0.95):.2f} s")
    print(f"  generated tokens: {r.tokens}; total throughput {r.tokens / wall:.1f} tokens/s")
    print(f"  run read back afterwards: {dict(r.runs_found)}")
    if master:
        cpu = cpu_seconds(master) - cpu0
        print(f"  server CPU time: {cpu:.1f} s ({cpu / wall:.2f} cores busy on average; "
              f"{r.tokens / cpu if cpu else float('nan'):.1f} tokens per CPU-second: "
              "less sensitive than tokens/s to other load on the machine)")
        print("  resident memory after the test:")
        print("\n".join(memory_report(master)))
    for p in r.problems[:20]:
        print(f"  PROBLEM {p}")
    missing = sum(n for k, n in r.runs_found.items() if k != "found")
    if missing:
        r.problems.append(f"{missing} completed runs could not be read back (another worker's memory?)")
    if done < args.clients:
        r.problems.append(f"{args.clients - done} clients got no run within the bounds (budget or time)")
    ok = not r.problems and not unfinished and all(s < 500 for s in r.statuses)
    print("  every request answered, no 5xx" if ok else f"  FAILED: {len(r.problems)} problems")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
