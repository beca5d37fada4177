"""Topic page and drill page latency under 20 concurrent clients against gunicorn.

Usage: .venv/bin/python bench/pages.py [requests_per_client]   — prints `p95_ms=<x>` last (worst page).
"""

import http.client
import statistics
import sys
import threading
import time
from urllib.parse import urlparse

from stack import Stack, percentile

CLIENTS = 20
PAGES = ["/topics/queueing/", "/topics/queueing/drill/"]


def hammer(base: str, path: str, n: int, out: list[float], errors: list[int]) -> None:
    target = urlparse(base)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    for _ in range(n):
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        out.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            errors.append(response.status)
    conn.close()


def measure(base: str, path: str, n: int) -> tuple[list[float], list[int]]:
    timings: list[float] = []
    errors: list[int] = []
    threads = [threading.Thread(target=hammer, args=(base, path, n, timings, errors)) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings, errors


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    stack = Stack()
    try:
        from django.core.management import call_command

        call_command("load_content", verbosity=0)
        base = stack.gunicorn(workers=2, threads=4)
        worst = 0.0
        for path in PAGES:
            measure(base, path, 2)  # warm up
            timings, errors = measure(base, path, n)
            p50, p95 = statistics.median(timings), percentile(timings, 0.95)
            worst = max(worst, p95)
            print(f"{path}: {len(timings)} requests, p50={p50:.1f} ms p95={p95:.1f} ms, non-200={len(errors)}")
    finally:
        stack.close()
    print(f"p95_ms={worst:.1f}")


if __name__ == "__main__":
    main()
