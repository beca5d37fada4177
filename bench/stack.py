"""A throwaway stack for benchmarks: private Redis, temp SQLite, optional workers and gunicorn."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self) -> None:
        from prepsite import devstack

        self.workdir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.redis_port = free_port()
        self.redis = devstack.start_redis(self.redis_port, self.workdir / "redis", appendonly=False)
        self.env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "DATABASE_URL": f"sqlite:///{self.workdir / 'bench.sqlite3'}",
            "DJANGO_SETTINGS_MODULE": "prepsite.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),  # gunicorn refuses the development key
        }
        os.environ.update(self.env)
        self.processes: list[subprocess.Popen] = []
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    def spawn(self, *args: str) -> subprocess.Popen:
        log = open(self.workdir / "processes.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            list(args), env=self.env, cwd=BASE_DIR, stdout=log, stderr=log, start_new_session=True
        )
        self.processes.append(process)
        return process

    def manage(self, *args: str) -> subprocess.Popen:
        return self.spawn(sys.executable, str(BASE_DIR / "manage.py"), *args)

    def workers(self, n: int = 2) -> None:
        from rq import Worker

        from prepsite.redis_conn import get_redis

        self.manage("rqworker-pool", "lab", "--num-workers", str(n), "--worker-class", "sandbox.ops.workers.LabWorker")
        self.manage("lab_janitor")
        self.manage("lab_renderer")
        deadline = time.monotonic() + 30
        while Worker.count(connection=get_redis()) < n:
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start; see " + str(self.workdir / "processes.log"))
            time.sleep(0.2)

    def consumers(self, n: int = 3) -> None:
        """The stream/log consumer pool, as make run starts it."""
        from prepsite.redis_conn import get_redis
        from sandbox import delivery

        self.manage("lab_consumers", "--num", str(n))
        deadline = time.monotonic() + 30
        while len(delivery.members(get_redis())) < n:
            if time.monotonic() > deadline:
                raise SystemExit("consumers did not start; see " + str(self.workdir / "processes.log"))
            time.sleep(0.2)

    def close_workers(self) -> None:
        """Stop the workers and janitor (so they do not compete with the measured server for CPU)."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=15)
        self.processes.clear()

    def gunicorn(self, workers: int = 2, threads: int = 4) -> str:
        port = free_port()
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self.spawn(
            gunicorn,
            "prepsite.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                return url
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.2)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.redis.terminate()
        self.redis.wait()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]
