"""`make run`'s stack end to end: private Redis, web, workers, scheduler, janitor — and a clean stop."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from django.core.management import call_command
from django.db import connections

from prepsite import devstack
from tests.conftest import BASE_DIR, free_port, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_the_run_stack_serves_pages_and_stops_everything_on_sigterm():
    call_command("load_content", verbosity=0)
    web_port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = worker_env(connections["default"].settings_dict) | {"PORT": str(web_port), "REDIS_URL": redis_url}
    stack = subprocess.Popen(
        [sys.executable, "-m", "prepsite.devstack"],
        env=env, cwd=BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{web_port}"
        deadline = time.monotonic() + 60
        health = {}
        while time.monotonic() < deadline:
            try:
                health = json.loads(get(base + "/healthz")[1])
                if health.get("workers") == 2 and health.get("scheduler"):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert health == {"database": "ok", "redis": "ok", "workers": 2, "scheduler": True}
        status, body = get(base + "/topics/queueing/")
        assert status == 200
        assert b'hx-get="/topics/queueing/personal/"' in body
        assert get(base + "/topics/queueing/personal/")[0] == 200

        stack.send_signal(signal.SIGTERM)
        output, _ = stack.communicate(timeout=30)
        assert stack.returncode == 0, output
        assert "Redis: private server stopped" in output
        assert not devstack.answers(redis_url, 0.5)
        assert survivors(web_port, redis_port) == ""
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stack.pid, signal.SIGKILL)
        if survivors(web_port, redis_port):  # only when the stop above failed: leave nothing running
            subprocess.run(["pkill", "-KILL", "-f", f"-p {web_port}|127.0.0.1:{web_port}|:{redis_port}"], check=False)


def survivors(web_port: int, redis_port: int) -> str:
    pattern = f"-p {web_port}|127.0.0.1:{web_port}|:{redis_port}"  # honcho, gunicorn, redis-server
    return subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
