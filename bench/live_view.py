"""What watching the Lab's live view costs: server time per update, and update latency under 200 watchers.

1. Server cost per poll, in process (Django's test client on the bench database): an unchanged running
   experiment (the poll carries the version it shows: 204) and a changing one (every panel rendered).
2. 200 watchers of running experiments (20 runs, 10 tabs each, as htmx polls: once a second, open loop,
   each poll carrying the version its page shows) against gunicorn as `make run` starts it (with the
   lab renderer), then 200 clients fetching a static file through the same gunicorn at the same rate.

Usage: .venv/bin/python bench/live_view.py [seconds per phase]   (three rounds of live then static; medians)
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

from stack import BASE_DIR, Stack, percentile

RUNS, TABS = 20, 10
ROUNDS = 3
PROCESSES = 8  # the watchers' load generators: separate processes, as separate browsers are
STATIC = "/static/css/site.css"
NEXT_POLL = re.compile(rb'hx-get="(/sandbox/experiments/\d+/live/\?[^"]+)"')


def procfile_web() -> tuple[int, int]:
    """make run's gunicorn workers and threads, read from the Procfile so the bench measures that server."""
    found = re.search(r"--workers (\d+) --threads (\d+)", (BASE_DIR / "Procfile").read_text())
    return int(found[1]), int(found[2])


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


def crowd(base: str, paths: list[str], cookie: str, seconds: float) -> tuple[list[float], dict, list]:
    chunks = [paths[i::PROCESSES] for i in range(PROCESSES)]
    with multiprocessing.Pool(PROCESSES) as pool:
        results = pool.map(load, [(base, chunk, cookie, seconds, i * len(chunk)) for i, chunk in enumerate(chunks)])
    timings = [ms for out, _ in results for ms, _ in out]
    by_status: dict[int, list[float]] = {}
    for out, _ in results:
        for ms, status in out:
            by_status.setdefault(status, []).append(ms)
    errors = [error for _, errs in results for error in errs]
    return timings, by_status, errors


def server_cost(client, path: str, n: int = 60) -> tuple[float, int]:
    """Mean milliseconds of server time (CPU, in process) per poll."""
    client.get(path, HTTP_HX_REQUEST="true")  # warm
    started = time.process_time()
    for _ in range(n):
        response = client.get(path, HTTP_HX_REQUEST="true")
    return (time.process_time() - started) * 1000 / n, response.status_code


def drawing_cost(experiment, n: int = 20) -> float:
    """Milliseconds of CPU to draw one version of the panels (once per version: renderer or first tab)."""
    from sandbox.liveview import panels

    panels.payload(experiment)  # warm
    started = time.process_time()
    for _ in range(n):
        panels.payload(experiment)
    return (time.process_time() - started) * 1000 / n


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20
    stack = Stack()
    try:
        from django.contrib.sessions.backends.db import SessionStore
        from django.test import Client
        from django.urls import reverse

        from prepsite.visitor import ANON_KEY, Visitor
        from sandbox.engine import experiments, live
        from sandbox.engine.presets import PRESETS
        from sandbox.liveview import panels, render_cache
        from sandbox.liveview.watch import watch_token

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
            client, f"{quiet_path}?t={watch_token(quiet.pk)}&v={render_cache.poll_version(quiet.pk)}"
        )
        busy = runs[0]
        panels.drawn(busy)  # a newer drawing than the version "old" the poll below claims to show
        changing_ms, changing_status = server_cost(
            client, f"{reverse('sandbox:live', args=[busy.pk])}?t={watch_token(busy.pk)}&v=old"
        )
        render_ms = drawing_cost(busy)
        print(f"server cost per poll: unchanged {unchanged_ms:.2f} ms ({unchanged_status}), "
              f"changing {changing_ms:.2f} ms ({changing_status}); drawing a new version once: {render_ms:.2f} ms",
              file=sys.stderr)  # fmt: skip

        base = stack.gunicorn(*procfile_web())
        for run in runs:  # each tab opens the page before it polls
            client.get(reverse("sandbox:detail", args=[run.pk]))
        time.sleep(1)
        paths = [
            f"{reverse('sandbox:live', args=[run.pk])}?t={watch_token(run.pk)}" for run in runs for _ in range(TABS)
        ]
        rounds = []
        for n in range(ROUNDS):  # alternate, so a busy moment of the shared machine hits both sides alike
            timings, by_status, errors = crowd(base, paths, cookie, seconds)
            static_timings, _, static_errors = crowd(base, [STATIC] * len(paths), "", seconds)
            if errors or static_errors:
                print((stack.workdir / "processes.log").read_text()[-3000:], file=sys.stderr)
                raise SystemExit(
                    f"errors: live {sorted(set(map(str, errors)))}, static {sorted(set(map(str, static_errors)))}"
                )
            p95, static_p95 = percentile(timings, 0.95), percentile(static_timings, 0.95)
            rounds.append((p95, static_p95))
            shares = ", ".join(
                f"{status}: {len(v) / len(timings):.0%} (p95 {percentile(v, 0.95):.1f} ms)"
                for status, v in sorted(by_status.items())
            )
            print(f"round {n + 1}: live p95 {p95:.1f} ms [{shares}], static p95 {static_p95:.1f} ms", file=sys.stderr)
    finally:
        stack.close()
    p95 = statistics.median(r[0] for r in rounds)
    static_p95 = statistics.median(r[1] for r in rounds)
    print(f"unchanged_ms={unchanged_ms:.2f} changing_ms={changing_ms:.2f} draw_ms={render_ms:.2f}")
    print(f"watchers={len(paths)} p95_ms={p95:.1f} static_p95_ms={static_p95:.1f} ratio={p95 / static_p95:.2f}")


if __name__ == "__main__":
    main()
