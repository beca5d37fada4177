"""`make run`'s stack end to end: private Redis, web, workers, scheduler, janitor — and a clean stop."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from prepsite import devstack
from tests.conftest import BASE_DIR, free_port, worker_env

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]
# make run's worker count, from the Procfile it runs.
WORKERS = int(re.search(r"--num-workers (\d+)", (BASE_DIR / "Procfile").read_text())[1])
HEALTHY = {"database": "ok", "redis": "ok", "workers": WORKERS, "scheduler": True}


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


@dataclass
class Stack:
    process: subprocess.Popen
    log: Path
    env: dict
    web_port: int
    redis_port: int
    health: dict

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def output(self, since: int = 0) -> str:
        """What the stack printed (honcho's merged stdout and stderr), from byte offset `since`."""
        return self.log.read_bytes()[since:].decode(errors="replace")

    def mark(self) -> int:
        return self.log.stat().st_size


@contextlib.contextmanager
def run_stack(log: Path):
    """`python -m prepsite.devstack` on a free port with its own private Redis, as `make run` starts it.

    Output goes to a file, not a pipe: an undrained pipe would block the stack once full. Yields once
    the site reports both workers and a scheduler; stops the stack (SIGTERM) if it is still running.
    """
    web_port, redis_port = free_port(), free_port()
    env = worker_env(connections["default"].settings_dict) | {
        "PORT": str(web_port),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "prepsite.devstack"],
            env=env, cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        health = {}
        while time.monotonic() < deadline:
            try:
                health = json.loads(get(f"http://127.0.0.1:{web_port}/healthz")[1])
                if health.get("workers") == WORKERS and health.get("scheduler"):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        yield Stack(process, log, env, web_port, redis_port, health)
    finally:
        if process.poll() is None:  # stop as Ctrl-C would: honcho stops web, workers and janitor, then Redis
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        if survivors(web_port, redis_port):  # only when the stop above failed: leave nothing running
            pattern = f"-p {web_port}|127.0.0.1:{web_port}|:{redis_port}"
            subprocess.run(["pkill", "-KILL", "-f", "--", pattern], check=False)
        shutil.rmtree(BASE_DIR / "var" / f"redis-{redis_port}", ignore_errors=True)  # this run's own


def test_the_run_stack_serves_pages_and_stops_everything_on_sigterm(tmp_path):
    call_command("load_content", verbosity=0)
    with run_stack(tmp_path / "stack.log") as stack:
        assert {name: stack.health.get(name) for name in HEALTHY} == HEALTHY, stack.output()
        status, body = get(stack.base + "/topics/queueing/")
        assert status == 200
        assert b'hx-get="/topics/queueing/personal/"' in body
        assert get(stack.base + "/topics/queueing/personal/")[0] == 200
        # gunicorn's control socket is this stack's own, not the one path every instance would share.
        control_socket = BASE_DIR / "var" / f"gunicorn-{stack.web_port}.ctl"
        assert f"Control socket listening at {control_socket}" in stack.output()
        assert control_socket.is_socket()

        stack.process.send_signal(signal.SIGTERM)
        stack.process.wait(timeout=30)
        output = stack.output()
        assert stack.process.returncode == 0, output
        assert "Redis: private server stopped" in output
        assert not devstack.answers(stack.env["REDIS_URL"], 0.5)
        assert survivors(stack.web_port, stack.redis_port) == ""
        assert not control_socket.exists()


def survivors(web_port: int, redis_port: int) -> str:
    pattern = f"-p {web_port}|127.0.0.1:{web_port}|:{redis_port}"  # honcho, gunicorn, redis-server
    # "--": the pattern starts with "-p", which pgrep would otherwise read as its own option.
    return subprocess.run(["pgrep", "-af", "--", pattern], capture_output=True, text=True).stdout


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid`, with its command line."""
    table = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in table.splitlines() if len(line.split(None, 2)) == 3]
    children: dict[int, list[tuple[int, str]]] = {}
    for child, parent, args in rows:
        children.setdefault(int(parent), []).append((int(child), args))
    found, todo = {}, [pid]
    while todo:
        for child, args in children.get(todo.pop(), []):
            found[child] = args
            todo.append(child)
    return found


def janitor_pid(stack: Stack) -> int | None:
    pids = [
        pid
        for pid, args in descendants(stack.process.pid).items()
        if args.endswith("manage.py lab_janitor")
        and "prepsite.supervise" not in args  # the janitor, not its supervisor
    ]
    return pids[0] if pids else None


def health(stack: Stack) -> dict:
    return json.loads(get(stack.base + "/healthz")[1])


def test_a_killed_janitor_is_restarted_alone_and_a_hung_one_shows_as_degraded(tmp_path):
    with run_stack(tmp_path / "stack.log") as stack:
        first = janitor_pid(stack)
        assert first, stack.output()
        deadline = time.monotonic() + 20
        while health(stack)["status"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert health(stack)["status"] == "ok", stack.output()

        os.kill(first, signal.SIGKILL)
        time.sleep(1.5)
        assert stack.process.poll() is None, stack.output()  # the stack carries on
        assert get(stack.base + "/healthz")[0] == 200  # and so does the web server
        deadline = time.monotonic() + 20
        while (janitor_pid(stack) in (None, first)) and time.monotonic() < deadline:
            time.sleep(0.2)
        second = janitor_pid(stack)
        assert second not in (None, first), stack.output()
        assert "supervise: janitor exited with -9" in stack.output()

        os.kill(second, signal.SIGSTOP)  # hung, not dead: only its heartbeat tells
        try:
            deadline = time.monotonic() + 30
            while health(stack)["status"] != "degraded" and time.monotonic() < deadline:
                time.sleep(0.5)
            body = health(stack)
            assert body["status"] == "degraded", body
            assert body["janitor_age_s"] > 10
        finally:
            os.kill(second, signal.SIGCONT)
        deadline = time.monotonic() + 20
        while health(stack)["status"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert health(stack)["status"] == "ok"
