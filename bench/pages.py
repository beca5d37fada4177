"""Study and drill page latency under 20 concurrent clients against gunicorn, with the Procfile's settings.

Each client is its own process running a closed loop (next request as soon as the last response is
read) on one keep-alive connection, asking for gzip as browsers do. Baseline, measured in the same run through the same server: a static file, the cheapest
thing the stack can answer. The personal fragments the pages load after themselves are shown too.

Usage: .venv/bin/python bench/pages.py [requests_per_client]
Three interleaved rounds; prints the median p95 of each path, then
`p95_ms=<worst page> static_p95_ms=<baseline> ratio=<worst / baseline>`, and last
`chapter_p95_ms=<chapter page> personal_p95_ms=<its personal fragment> personal_ratio=<fragment / page>`
(the personal part of a page should cost within 3x of the shared page it fills in).
"""

import multiprocessing
import multiprocessing.pool
import socket
import statistics
import sys
import time
from urllib.parse import urlparse

from stack import Stack, percentile

CLIENTS = 20
ROUNDS = 3
CHAPTER = "/topics/queueing/scalability-and-reliability/"  # the longest chapter
CHAPTER_PERSONAL = CHAPTER + "personal/"
PAGES = [CHAPTER, "/topics/queueing/", "/topics/queueing/drill/"]
FRAGMENTS = [CHAPTER_PERSONAL, "/topics/queueing/personal/", "/topics/queueing/drill-status/"]
BASELINE = "/static/css/site.css"


def read_response(sock: socket.socket, buffer: bytes) -> tuple[int, bool, bytes]:
    """(status, server closes, bytes left over) — just enough HTTP/1.1 to keep the client cheap."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection mid-response")
        buffer += chunk
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:"))
    while len(buffer) < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection mid-body")
        buffer += chunk
    return int(lines[0].split()[1]), b"connection: close" in lines, buffer[length:]


def client(base: str, path: str, n: int) -> tuple[list[float], list[int]]:
    # A raw socket rather than http.client: the load generator shares the 2 cores with the server,
    # and http.client's parsing cost it about half again as much CPU.
    target = urlparse(base)
    request = f"GET {path} HTTP/1.1\r\nHost: {target.hostname}:{target.port}\r\nAccept-Encoding: gzip\r\n\r\n".encode()
    sock = socket.create_connection((target.hostname, target.port))
    buffer = b""
    timings: list[float] = []
    errors: list[int] = []
    for _ in range(n):
        started = time.perf_counter()
        sock.sendall(request)
        status, closes, buffer = read_response(sock, buffer)
        timings.append((time.perf_counter() - started) * 1000)
        if status != 200:
            errors.append(status)
        if closes:
            sock.close()
            sock, buffer = socket.create_connection((target.hostname, target.port)), b""
    sock.close()
    return timings, errors


def measure(pool: multiprocessing.pool.Pool, base: str, path: str, n: int) -> tuple[list[float], list[int]]:
    """CLIENTS clients at once, each in its own process (as browsers are): threads sharing one GIL
    would add their own queueing to every response longer than a socket buffer."""
    results = pool.starmap(client, [(base, path, n)] * CLIENTS)
    return [t for timings, _ in results for t in timings], [e for _, errors in results for e in errors]


def report(pool: multiprocessing.pool.Pool, base: str, path: str, n: int) -> float:
    timings, errors = measure(pool, base, path, n)
    p50, p95 = statistics.median(timings), percentile(timings, 0.95)
    print(f"  {path}: {len(timings)} requests, p50={p50:.1f} ms p95={p95:.1f} ms", flush=True)
    if errors:
        raise SystemExit(f"{path} answered {sorted(set(errors))}")
    return p95


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    paths = [BASELINE, *PAGES, *FRAGMENTS]
    p95s: dict[str, list[float]] = {path: [] for path in paths}
    stack = Stack()
    try:
        from django.core.management import call_command

        call_command("load_content", verbosity=0)
        base = stack.gunicorn(workers=2, threads=4)
        with multiprocessing.Pool(CLIENTS) as pool:
            for path in paths:
                measure(pool, base, path, 3)  # warm up: first renders, cache fill, connections
            # Rounds interleave the paths, so a noisy spell on a shared machine hits all of them alike.
            for round_number in range(1, ROUNDS + 1):
                print(f"round {round_number} of {ROUNDS}", flush=True)
                for path in paths:
                    p95s[path].append(report(pool, base, path, n))
    finally:
        stack.close()
    medians = {path: statistics.median(values) for path, values in p95s.items()}
    print("median p95 over rounds: " + ", ".join(f"{path} {value:.1f} ms" for path, value in medians.items()))
    worst, baseline = max(medians[path] for path in PAGES), medians[BASELINE]
    print(f"p95_ms={worst:.1f} static_p95_ms={baseline:.1f} ratio={worst / baseline:.2f}")
    chapter, personal = medians[CHAPTER], medians[CHAPTER_PERSONAL]
    print(f"chapter_p95_ms={chapter:.1f} personal_p95_ms={personal:.1f} personal_ratio={personal / chapter:.2f}")


if __name__ == "__main__":
    main()
