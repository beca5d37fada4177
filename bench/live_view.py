"""What watching the Lab's live view costs: server time per update, and update latency under 200 watchers.

1. Server cost per poll, in process (Django's test client on the bench database): an unchanged running
   experiment (the poll carries the version it shows: 204) and a changing one (every panel rendered).
2. 200 watchers of running experiments (20 runs, 10 tabs each, as htmx polls: once a second, open loop,
   each poll carrying the version its page shows) against gunicorn, then 200 clients fetching a static
   file through the same gunicorn at the same rate, in the same run.

Usage: .venv/bin/python bench/live_view.py [seconds]
Prints `watchers=200 p95_ms=<x> static_p95_ms=<y> ratio=<x/y>` last.
"""

import multiprocessing
import re
import socket
import statistics
import sys
import threading
import time
from urllib.parse import urlparse

from stack import Stack, percentile

RUNS, TABS = 20, 10
PROCESSES = 8  # the watchers' load generators: separate processes, as separate browsers are
STATIC = "/static/css/site.css"
NEXT_POLL = re.compile(rb'hx-get="(/sandbox/experiments/\d+/live/\?[^"]+)"')


def http_get(sock: socket.socket, request: bytes) -> tuple[int, bytes]:
    sock.sendall(request)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    head, _, body = buffer.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:")), 0)
    while len(body) < length:
        body += sock.recv(1 << 20)
    return int(lines[0].split()[1]), body


def watcher(base: str, path: str, cookie: str, seconds: float, offset: float, out: list, errors: list) -> None:
    target = urlparse(base)
    time.sleep(offset)
    sock = socket.create_connection((target.hostname, target.port))
    url = path
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        request = (
            f"GET {url} HTTP/1.1\r\nHost: {target.hostname}\r\nCookie: {cookie}\r\nHX-Request: true\r\n\r\n".encode()
        )
        started = time.perf_counter()
        try:
            status, body = http_get(sock, request)
        except (ConnectionError, OSError):
            errors.append("connection")
            sock = socket.create_connection((target.hostname, target.port))
            continue
        elapsed = time.perf_counter() - started
        out.append((elapsed * 1000, status))
        if status not in (200, 204, 286):
            errors.append(status)
        found = NEXT_POLL.search(body)  # what the page's poller asks for next: its token and version
        url = found[1].decode().replace("&amp;", "&") if found else url
        time.sleep(max(0.0, 1.0 - elapsed))
    sock.close()


def load(args: tuple) -> tuple[list, list]:
    base, paths, cookie, seconds, first = args
    out: list = []
    errors: list = []
    threads = [
        threading.Thread(target=watcher, args=(base, path, cookie, seconds, ((first + i) % 200) / 200, out, errors))
        for i, path in enumerate(paths)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out, errors


def crowd(base: str, paths: list[str], cookie: str, seconds: float) -> tuple[list[float], list[int], list]:
    chunks = [paths[i::PROCESSES] for i in range(PROCESSES)]
    with multiprocessing.Pool(PROCESSES) as pool:
        results = pool.map(load, [(base, chunk, cookie, seconds, i * len(chunk)) for i, chunk in enumerate(chunks)])
    timings = [ms for out, _ in results for ms, _ in out]
    statuses = [status for out, _ in results for _, status in out]
    errors = [error for _, errs in results for error in errs]
    return timings, statuses, errors


def server_cost(client, path: str, n: int = 60, fresh: bool = False) -> tuple[float, int]:
    """Mean milliseconds of server time (CPU, in process) per poll; fresh: no cached render to reuse."""
    from prepsite.redis_conn import get_redis

    client.get(path, HTTP_HX_REQUEST="true")  # warm
    spent = 0.0
    for _ in range(n):
        if fresh:
            for key in get_redis().scan_iter("lab:exp:*:render:*"):
                get_redis().delete(key)
        started = time.process_time()
        response = client.get(path, HTTP_HX_REQUEST="true")
        spent += time.process_time() - started
    return spent * 1000 / n, response.status_code


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20
    stack = Stack()
    try:
        from django.contrib.sessions.backends.db import SessionStore
        from django.test import Client
        from django.urls import reverse

        from prepsite.visitor import ANON_KEY, Visitor
        from sandbox import experiments, live
        from sandbox.presets import PRESETS
        from sandbox.watch import watch_token

        owner = Visitor(anon_id="bench-watcher")
        session = SessionStore()
        session[ANON_KEY] = owner.anon_id
        session.create()
        cookie = f"sessionid={session.session_key}"
        stack.workers(4)
        long_run = {**PRESETS["flaky"].parameters(), "jobs": 120, "arrival_per_s": 2.0, "duration_ms": 300,
                    "duration_spread_ms": 100, "failure_rate": 0.3, "max_retries": 2, "concurrency": 2}  # fmt: skip
        runs = [
            experiments.experiment_start(owner=owner, preset="flaky", params=long_run, seed=seed)
            for seed in range(RUNS)
        ]
        quiet = experiments.experiment_start(
            owner=owner, preset="poison",
            params={**PRESETS["poison"].parameters(), "jobs": 1, "max_retries": 1, "backoff": "fixed",
                    "backoff_base_s": 600, "backoff_cap_s": 600, "duration_ms": 10, "duration_spread_ms": 0},
            seed=1,
        )  # fmt: skip
        while not live.read(quiet.pk).scheduled:
            time.sleep(0.2)  # its one retry waits ten minutes: nothing changes meanwhile

        client = Client(HTTP_HOST="127.0.0.1")
        client.cookies["sessionid"] = session.session_key
        quiet_path = reverse("sandbox:live", args=[quiet.pk])
        unchanged_ms, unchanged_status = server_cost(
            client, f"{quiet_path}?t={watch_token(quiet.pk)}&v={live.poll_version(quiet.pk)}"
        )
        changing_ms, changing_status = server_cost(client, reverse("sandbox:live", args=[runs[0].pk]), fresh=True)
        print(f"server cost per poll: unchanged {unchanged_ms:.2f} ms ({unchanged_status}), "
              f"changing {changing_ms:.2f} ms ({changing_status})", file=sys.stderr)  # fmt: skip

        base = stack.gunicorn(workers=2, threads=8)
        paths = [
            f"{reverse('sandbox:live', args=[run.pk])}?t={watch_token(run.pk)}" for run in runs for _ in range(TABS)
        ]
        timings, statuses, errors = crowd(base, paths, cookie, seconds)
        static_timings, _, static_errors = crowd(base, [STATIC] * len(paths), "", seconds)
    finally:
        stack.close()
    if errors or static_errors:
        print((stack.workdir / "processes.log").read_text()[-3000:], file=sys.stderr)
        raise SystemExit(f"errors: live {sorted(set(map(str, errors)))}, static {sorted(set(map(str, static_errors)))}")
    share = {status: statuses.count(status) / len(statuses) for status in sorted(set(statuses))}
    p95, static_p95 = percentile(timings, 0.95), percentile(static_timings, 0.95)
    print(f"live polls: {len(timings)}, p50 {statistics.median(timings):.1f} ms, statuses {share}", file=sys.stderr)
    print(f"static: {len(static_timings)}, p50 {statistics.median(static_timings):.1f} ms", file=sys.stderr)
    print(f"unchanged_ms={unchanged_ms:.2f} changing_ms={changing_ms:.2f}")
    print(f"watchers={len(paths)} p95_ms={p95:.1f} static_p95_ms={static_p95:.1f} ratio={p95 / static_p95:.2f}")


if __name__ == "__main__":
    main()
