"""Live-view poll latency for one 500-job experiment under 50 concurrent pollers, with and without
10,000 jobs of other experiments sitting in Redis (gunicorn, real Redis, real workers).

Each poller behaves like the page's htmx trigger (`every 1s`): one poll a second, open loop.

Usage: .venv/bin/python bench/live_view.py [polls_per_client]   — prints `p95_ms=<x>` last.
"""

import http.client
import statistics
import sys
import threading
import time
from urllib.parse import urlparse

from stack import Stack, percentile

POLLERS = 50


def poll(base: str, path: str, cookie: str, n: int, out: list[float], errors: list[int]) -> None:
    target = urlparse(base)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    headers = {"Cookie": cookie, "HX-Request": "true"}
    for _ in range(n):
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        out.append(elapsed * 1000)
        if response.status not in (200, 286):
            errors.append(response.status)
        time.sleep(max(0.0, 1.0 - elapsed))
    conn.close()


def measure(base: str, path: str, cookie: str, n: int) -> list[float]:
    timings: list[float] = []
    errors: list[int] = []
    threads = [threading.Thread(target=poll, args=(base, path, cookie, n, timings, errors)) for _ in range(POLLERS)]
    for thread in threads:
        thread.start()
        time.sleep(1 / POLLERS)  # spread the pollers across the second, as independent browsers are
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} polls failed: {sorted(set(errors))}")
    return timings


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    stack = Stack()
    try:
        from django.contrib.sessions.backends.db import SessionStore
        from django.urls import reverse

        from prepsite.visitor import ANON_KEY, CLI, Visitor
        from sandbox import experiments, live
        from sandbox.presets import PRESETS

        owner = Visitor(anon_id="bench-watcher")
        session = SessionStore()
        session[ANON_KEY] = owner.anon_id
        session.create()
        params = {**PRESETS["flaky"].parameters(), "jobs": 500, "duration_ms": 5, "duration_spread_ms": 0,
                  "queue_cap": 500, "concurrency": 8, "max_retries": 2, "backoff_base_s": 1, "backoff_cap_s": 2}  # fmt: skip
        experiment = experiments.experiment_start(owner=owner, preset="flaky", params=params, seed=1)
        stack.workers(2)
        print("running the 500-job experiment so its live state is full ...", file=sys.stderr)
        while not live.read(experiment.pk, events=0).finished:
            time.sleep(0.5)
        stack.close_workers()
        base = stack.gunicorn(workers=2, threads=8)
        path = reverse("sandbox:live", args=[experiment.pk])
        cookie = f"sessionid={session.session_key}"
        measure(base, path, cookie, 2)  # warm up
        alone = measure(base, path, cookie, n)
        print("adding 20 other experiments of 500 jobs (10,000 jobs) that sit in Redis ...", file=sys.stderr)
        other = {
            **PRESETS["happy"].parameters(),
            "jobs": 500,
            "queue_cap": 500,
            "duration_ms": 0,
            "duration_spread_ms": 0,
        }
        for seed in range(20):
            experiments.experiment_start(owner=CLI, preset="happy", params=other, seed=seed)
        crowded = measure(base, path, cookie, n)
    finally:
        stack.close()
    p95_alone, p95_crowded = percentile(alone, 0.95), percentile(crowded, 0.95)
    print(f"alone: {len(alone)} polls, p50={statistics.median(alone):.1f} ms p95={p95_alone:.1f} ms")
    print(
        f"with 10,000 other jobs: {len(crowded)} polls, p50={statistics.median(crowded):.1f} ms p95={p95_crowded:.1f} ms"
    )
    print(f"ratio={p95_crowded / p95_alone:.2f}")
    print(f"p95_ms={p95_crowded:.1f}")


if __name__ == "__main__":
    main()
