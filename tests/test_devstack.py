"""`make run`'s stack end to end: private Redis, web, workers, scheduler, janitor — what it prints (one line
per Lab attempt, no traceback for an injected fault, no poll lines), a killed janitor — and a clean stop."""

import contextlib
import json
import operator
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections
from redis import Redis
from rq import Callback, Queue

from prepsite import devstack
from tests.conftest import BASE_DIR, free_port, wait_for, worker_env

# One stack for the module (it boots in ~10 s): its tests run in this order in one process
# (tests/conftest.py, ONE_PROCESS_MODULES), and the SIGTERM test, which stops it, comes last.
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        call_command("load_content", verbosity=0)
    with run_stack(tmp_path_factory.mktemp("run") / "stack.log") as stack:
        assert {name: stack.health.get(name) for name in HEALTHY} == HEALTHY, stack.output()
        yield stack


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


def attempt_lines(output: str, experiment_id: int) -> list[str]:
    return re.findall(rf"lab exp {experiment_id} job \d+ attempt .*", output)


def test_a_poison_run_prints_one_line_per_attempt_and_polls_are_not_access_logged(stack):
    since = stack.mark()
    command = [sys.executable, "manage.py", "experiment", "run", "poison", "--jobs", "10", "--seed", "7"]
    command += ["--set", "backoff_base_s=1", "--set", "backoff_cap_s=2", "--json"]
    run = subprocess.run(command, env=stack.env, cwd=BASE_DIR, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.splitlines()[-1])
    assert (summary["finished"], summary["dead_lettered"], summary["attempts"]) == (True, 10, 40)
    exp = summary["id"]

    wait_for(lambda: len(attempt_lines(stack.output(since), exp)) >= 40, 10, message="40 attempt lines")
    time.sleep(0.5)  # nothing more may follow
    output = stack.output(since)
    lines = attempt_lines(output, exp)
    assert len(lines) == 40, "\n".join(lines)
    seen = set()
    for line in lines:
        job, attempt, next_step = re.fullmatch(
            rf"lab exp {exp} job (\d+) attempt (\d)/4: PoisonMessage \(injected\) -> (retry in \ds|dead-lettered)",
            line,
        ).groups()
        assert (next_step == "dead-lettered") == (attempt == "4"), line
        seen.add((int(job), int(attempt)))
    assert seen == {(job, attempt) for job in range(1, 11) for attempt in range(1, 5)}
    assert "Traceback" not in output
    assert f"lab-{exp}-" not in output  # RQ's own per-job lines are gone

    # htmx polls are not access-logged; page loads and plain GETs of the same URLs are.
    since = stack.mark()
    poll = {"HX-Request": "true", "User-Agent": "test-poller"}
    for _ in range(3):
        assert get(stack.base + "/topics/queueing/personal/", poll)[0] == 200
        assert get(stack.base + "/topics/queueing/drill-status/", poll)[0] == 200
        # The CLI's experiment is not this visitor's: 404, which Django logs as a warning.
        with pytest.raises(urllib.error.HTTPError, match="404"):
            get(stack.base + f"/sandbox/experiments/{exp}/live/", poll)
    assert get(stack.base + "/topics/queueing/", {"User-Agent": "test-browser"})[0] == 200
    assert get(stack.base + "/topics/queueing/personal/", {"User-Agent": "test-browser"})[0] == 200
    wait_for(lambda: stack.output(since).count("test-browser") == 2, 10, message="the page loads' access lines")
    output = stack.output(since)
    assert '"GET /topics/queueing/ HTTP/1.1" 200' in output
    assert '"GET /topics/queueing/personal/ HTTP/1.1" 200' in output
    assert "test-poller" not in output
    assert f"Not Found: /sandbox/experiments/{exp}/live/" in output


def test_a_real_error_in_a_lab_job_keeps_its_traceback(stack):
    since = stack.mark()
    connection = Redis.from_url(stack.env["REDIS_URL"])
    # A Lab job (its id and failure callback are the Lab's) that fails with a bug rather than a fault.
    Queue("lab", connection=connection).enqueue(
        operator.truediv, 1, 0, job_id="lab-999999-1", on_failure=Callback("sandbox.ops.jobs.on_failure")
    )
    wait_for(lambda: "ZeroDivisionError: division by zero\n" in stack.output(since), 30, message="the traceback")
    output = stack.output(since)
    assert "lab exp 999999 job 1 attempt 1/1: ZeroDivisionError: division by zero -> dead-lettered" in output
    assert "Traceback (most recent call last)" in output


def test_a_killed_janitor_is_restarted_alone_and_a_hung_one_shows_as_degraded(stack):
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


def test_the_run_stack_serves_pages_and_stops_everything_on_sigterm(stack):
    """Last in this module: it stops the module's stack."""
    call_command("load_content", verbosity=0)  # each test before this one ended by emptying the tables
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
