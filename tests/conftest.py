import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from redis import Redis
from rq import Worker
from rq.scheduler import RQScheduler

from prepsite import devstack

BASE_DIR = Path(__file__).resolve().parent.parent
ARTIFACTS = BASE_DIR / "artifacts"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Debian's browsers, lightest first: the old headless shell is what Playwright itself runs for headless
# Chromium (its `chromium-headless-shell`) and costs about half the CPU a page of the full browser does.
SYSTEM_CHROMIUMS = ("/usr/bin/chromium-headless-shell", "/usr/bin/chromium")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


STATE: dict = {}


@pytest.fixture(scope="session", autouse=True)
def _browser_waits():
    _stretch_browser_waits()


BROWSER_FIXTURES = {"page", "browser", "context", "axe_page"}


def pytest_collection_modifyitems(config, items):
    """Markers follow the fixtures a test uses, so a new test cannot forget one.

    `workers`: uses the real pool; `browser`: drives Chromium; `process`: its subject is a real
    process or a real fault (the pool, a killed process, a Redis restart, the run stack) — the
    PostgreSQL pass leaves `browser` and `process` out, since neither differs between databases.
    """
    for item in items:
        fixtures = set(item.fixturenames)
        if fixtures & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if "rq_workers" in fixtures:
            item.add_marker(pytest.mark.workers)
        if fixtures & {"rq_workers", "redis_control"} or item.get_closest_marker("process"):
            item.add_marker(pytest.mark.process)


# Modules whose tests must run in one process, in file order: they share one module-scoped run stack
# (booted once), and the last test stops it.
ONE_PROCESS_MODULES = {"tests/test_devstack.py"}


def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (`-n`): tests spread one by one, except ONE_PROCESS_MODULES, each sent whole
    to one process. (xdist's `loadgroup` would say this with marks, but it silently stopped grouping
    with pytest 9.2's structured node ids: pytest-xdist#1386.) Each process boots its own worker pool
    the first time one of its tests needs it."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_PROCESS_MODULES else nodeid

    return Scheduling(config, log)


@pytest.fixture
def queueing(db):
    """The real queueing content, loaded when missing (transactional tests start from empty tables)."""
    from django.core.management import call_command

    from topics.models import Topic

    if not Topic.objects.filter(slug="queueing").exists():
        call_command("load_content", stdout=open(os.devnull, "w"))  # noqa: SIM115
    return Topic.objects.get(slug="queueing")


def clear_rate_limits() -> None:
    """Forget every rate limit's counts (a fuzz test calls it per example, so each reaches the code)."""
    redis = Redis.from_url(STATE["redis_url"])
    # SCAN's default of 10 keys a call costs a round trip per 10 keys: late in a run this process's Redis holds
    # tens of thousands (jobs, streams, events), and 40 examples spent ~20 s here.
    keys = list(redis.scan_iter("rl:*", count=10_000))
    if keys:
        redis.delete(*keys)


@pytest.fixture
def one_window(monkeypatch):
    """All requests of the test fall in one fixed rate-limit window: a test that spends a limit and expects
    the next call refused would see the count restart at a real window boundary (a slow machine makes
    that likely). Only the limiter's clock is pinned; the counting is the real Redis."""
    import prepsite.ratelimit

    moment = time.time()
    monkeypatch.setattr(prepsite.ratelimit, "time", SimpleNamespace(time=lambda: moment))


_EXPERIMENT_ID_BLOCKS = itertools.count(100_000, 100_000)


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """Django's advice for tests: a cheap hasher. PBKDF2's million rounds cost ~0.4 s a log-in here, and
    the account tests log in hundreds of times; what they test is who may log in, not the hash."""
    from django.conf import settings
    from django.contrib.auth.hashers import get_hashers, get_hashers_by_algorithm

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_hashers.cache_clear()
    get_hashers_by_algorithm.cache_clear()


@pytest.fixture(autouse=True)
def _experiment_ids_never_repeat(request):
    """SQLite rolls an AUTOINCREMENT sequence back with a test's transaction, so the next test would reuse
    experiment ids whose Redis keys (flags, streams, a consumer's kill request) are still there, and a
    run could start on another run's leftovers. Each test's experiments are numbered in a block of its
    own. (PostgreSQL's sequences never roll back.)"""
    if "_django_db_helper" not in request.fixturenames:
        return
    request.getfixturevalue("_django_db_helper")
    from django.db import connection

    if connection.vendor != "sqlite":
        return
    block = next(_EXPERIMENT_ID_BLOCKS)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = 'sandbox_experiment'", [block])
        if cursor.rowcount == 0:
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('sandbox_experiment', %s)", [block])


@pytest.fixture(autouse=True)
def _fresh_rate_limits(_private_services):
    """Every test client is 127.0.0.1: one test's requests must not spend the next test's limits."""
    clear_rate_limits()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _private_services(tmp_path_factory):
    """The session's own Redis on a free loopback port (TEST_REDIS_URL points it elsewhere)."""
    from django.conf import settings

    workdir = tmp_path_factory.mktemp("services")
    STATE["workdir"] = workdir
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        if not devstack.answers(url):
            pytest.exit(f"TEST_REDIS_URL={url} is not answering", returncode=2)
    else:
        STATE["redis_port"] = free_port()
        STATE["redis_dir"] = workdir / "redis"
        STATE["redis"] = devstack.start_redis(STATE["redis_port"], STATE["redis_dir"])
        url = f"redis://127.0.0.1:{STATE['redis_port']}/0"
    STATE["redis_url"] = url
    for queue in settings.RQ_QUEUES.values():  # in place: django_rq.settings holds this very dict
        queue["URL"] = url
    yield
    process = STATE.get("redis")
    if process and process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings, tmp_path_factory):
    """A file-backed SQLite test database (not :memory:) so worker processes share it."""
    from django.db import connections

    default = connections["default"].settings_dict
    if default["ENGINE"].endswith("sqlite3"):
        default["TEST"]["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


# One factor for every wait in the suite: a busy or slow machine stretches waits, never assertions.
SLOW = float(os.environ.get("TEST_SLOW_FACTOR", "2"))


def _stretch_browser_waits() -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=wait_ms(5000))  # Playwright's own default is 5 s


# What the status region says once Stop is pressed: its confirmation, or, when the stop ends the run at once and
# a poll answers first, the outcome (which is said only of a stopped run).
STOP_SAID = re.compile(r"Stopping|Stopped early")


def wait_ms(milliseconds: int) -> int:
    """A browser wait (Playwright's timeout=, in ms), stretched by the same factor."""
    return int(milliseconds * SLOW)


def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail after timeout seconds (times SLOW)."""
    timeout *= SLOW
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def redis_url(_private_services) -> str:
    return STATE["redis_url"]


@pytest.fixture
def redis_conn(redis_url) -> Redis:
    return Redis.from_url(redis_url)


class RedisControl:
    """Stop and restart the test session's own Redis (never anyone else's)."""

    def stop(self, *, crash: bool = False) -> None:
        """Stop Redis: a clean shutdown, or with crash=True a SIGKILL (only what AOF fsynced survives)."""
        process = STATE.get("redis")
        if process is None:
            pytest.skip("TEST_REDIS_URL points at a server this session does not own")
        process.kill() if crash else process.terminate()
        process.wait(timeout=10)

    def start(self) -> None:
        STATE["redis"] = devstack.start_redis(STATE["redis_port"], STATE["redis_dir"])
        if STATE.get("workers_running"):
            # Leave the next test a working lab. A heartbeat younger than the restart proves a live
            # scheduler: the append-only file brings back the lock and heartbeat of dead ones.
            from sandbox.engine.rq_storage import scheduler_heartbeat_age

            restarted = time.monotonic()
            connection = Redis.from_url(STATE["redis_url"])

            def scheduler_back() -> bool:
                holder, age = scheduler_heartbeat_age(connection)
                fresh = holder is not None and age is not None and age < time.monotonic() - restarted
                return fresh and Worker.count(connection=connection) >= 2

            wait_for(scheduler_back, 60, 0.2, "the lab scheduler to come back after the restart")
            from sandbox import delivery

            wait_for(
                lambda: len(delivery.members(connection)) >= CONSUMERS, 30, 0.2, "the stream/log consumers to rejoin"
            )


@pytest.fixture
def redis_control():
    control = RedisControl()
    yield control
    if STATE.get("redis") is not None and STATE["redis"].poll() is not None:
        control.start()


def worker_env(db_settings: dict) -> dict:
    env = {**os.environ, "REDIS_URL": STATE["redis_url"], "PYTHONUNBUFFERED": "1"}
    if db_settings["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db_settings['NAME']}"
    else:
        user, password = db_settings.get("USER", ""), db_settings.get("PASSWORD", "")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        env["DATABASE_URL"] = f"postgres://{auth}{db_settings['HOST']}:{db_settings['PORT']}/{db_settings['NAME']}"
    return env


CONSUMERS = 3  # stream/log consumer processes (sandbox.delivery), as make run starts them


class WorkerPool:
    """A real `rqworker-pool` process (as `make run` starts it) plus the lab janitor and renderer."""

    manage = [sys.executable, str(BASE_DIR / "manage.py")]

    def __init__(self, env: dict, num_workers: int = 2):
        self.env = env
        self.num_workers = num_workers
        self.processes: list[subprocess.Popen] = []
        self.janitor: subprocess.Popen | None = None
        self.log = open(STATE["workdir"] / "workers.log", "ab")  # noqa: SIM115

    def start(self) -> None:
        from sandbox import delivery

        pool = [*self.manage, "rqworker-pool", "lab", "default", "--num-workers", str(self.num_workers)]
        pool += ["--worker-class", "sandbox.ops.workers.LabWorker"]
        self.processes.append(self._spawn(pool))
        # as make run's Procfile starts them
        for command in (["lab_renderer"], ["lab_consumers", "--num", str(CONSUMERS)]):
            self.processes.append(self._spawn([*self.manage, *command]))
        self.start_janitor()
        connection = Redis.from_url(STATE["redis_url"])
        wait_for(lambda: Worker.count(connection=connection) >= self.num_workers, 30, message="RQ workers to register")
        wait_for(lambda: len(delivery.members(connection)) >= CONSUMERS, 30, message="stream/log consumers to join")

    def _spawn(self, command: list[str]) -> subprocess.Popen:
        # Each in a process group of its own, so stopping one takes its forked children (RQ workers and
        # their work-horses, stream/log consumers) with it: SIGKILL of a parent alone would orphan them.
        return subprocess.Popen(
            command, env=self.env, cwd=BASE_DIR, stdout=self.log, stderr=self.log, start_new_session=True
        )

    def start_janitor(self) -> None:
        """Start the janitor unless it runs; a restarted one is waited for until its first pass."""
        if self.janitor is not None and self.janitor.poll() is None:
            return
        from sandbox.ops import janitor

        first = self.janitor is None  # start() waits for the workers and consumers meanwhile
        started = time.monotonic()
        self.janitor = self._spawn([*self.manage, "lab_janitor"])
        self.processes.append(self.janitor)
        if not first:
            connection = Redis.from_url(STATE["redis_url"])

            def passed() -> bool:
                age = janitor.heartbeat_age(connection)
                return age is not None and age < time.monotonic() - started

            wait_for(passed, 30, 0.1, "the restarted janitor's first pass")

    def stop_janitor(self) -> None:
        """Stop the janitor alone: it is the one process of the pool that acts on database rows (it ends runs
        whose Redis record it cannot find), so an in-process engine test's committed runs are safe from it."""
        from rq import Queue

        from sandbox.engine import rq_storage

        if self.janitor is not None and self.janitor.poll() is None:
            self.janitor.send_signal(signal.SIGTERM)
            self.janitor.wait(timeout=15)
        connection = Redis.from_url(STATE["redis_url"])
        for name in ("lab", "default"):  # the maintenance lock it may have held would hold the next one back
            rq_storage.release_cleaning_lock(Queue(name, connection=connection))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever of its group is still running
        self.processes.clear()

    def workers(self) -> list[Worker]:
        return Worker.all(connection=Redis.from_url(STATE["redis_url"]))


class Stack:
    """The session's worker pool, started when a test first needs it; an in-process engine test that commits
    its rows stops the pool's janitor until the next test that needs the pool."""

    def __init__(self, env: dict):
        self.env = env
        self.pool: WorkerPool | None = None

    def start(self) -> WorkerPool:
        if self.pool is None:
            pool = WorkerPool(self.env)
            pool.start()
            self.pool = pool
            STATE["workers_running"] = True
        self.pool.start_janitor()  # an in-process engine test may have stopped it
        return self.pool

    def stop(self) -> None:
        if self.pool is not None:
            STATE["workers_running"] = False
            self.pool.stop()
            self.pool = None
            connection = Redis.from_url(STATE["redis_url"])
            for worker in Worker.all(connection=connection):  # SIGTERMed workers unregister; be sure
                worker.register_death()
            for queue in ("lab", "default"):  # a stale lock would hold the next pool's scheduler back
                connection.delete(RQScheduler.get_locking_key(queue))


@pytest.fixture(scope="session")
def _stack(django_db_setup, django_db_blocker):
    from django.db import connection

    with django_db_blocker.unblock():
        env = worker_env(connection.settings_dict)
    stack = Stack(env)
    yield stack
    stack.stop()


@pytest.fixture
def rq_workers(_stack, request) -> WorkerPool:
    """Real RQ worker processes (and the janitor, renderer and consumers) sharing the test database.

    A test's runs still going at its end are stopped before its rows are flushed: left running, their jobs kept
    the shared pool busy failing on rows that no longer exist, and under load a later stream run never finished.
    """
    yield _stack.start()
    if not request.node.get_closest_marker("django_db") and "live_server" not in request.fixturenames:
        return  # no database: it started no run
    from redis.exceptions import RedisError

    from sandbox.engine import experiments
    from sandbox.models import Experiment

    with contextlib.suppress(RedisError):  # a test that stopped Redis has its own clean-up
        for experiment in Experiment.objects.active():
            experiments.experiment_stop(experiment)


@pytest.fixture
def lab_engine(request, _stack, db, monkeypatch):
    """The lab's RQ engine in this process (tests/sandbox/engine.py) on a clock the test moves.

    It runs on the session Redis's database 1: a worker pool this process may have started listens on
    database 0 and never sees these jobs, so the pool need not stop, and each test starts clean.

    Jobs run in this process, so an injected crash (a fault plan's SIGKILL of "its own" process) would kill the
    test process itself (xdist: "node down", and the tests queued behind it hang): it fails the test instead.
    """
    import time_machine
    from django.conf import settings

    from tests.sandbox.engine import InProcessLab, frozen_start

    marker = request.node.get_closest_marker("django_db")
    if marker and marker.kwargs.get("transaction") and _stack.pool is not None:
        _stack.pool.stop_janitor()  # it would end committed runs whose record it looks for on database 0
    test_process, real_kill, suicides = os.getpid(), os.kill, []

    def kill(pid: int, sig: int) -> None:
        if pid == test_process and sig == signal.SIGKILL:  # a forked work-horse has a pid of its own
            suicides.append(pid)
            raise RuntimeError("an injected SIGKILL would kill the test process")
        real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    url = re.sub(r"(/\d+)?$", "/1", STATE["redis_url"], count=1)
    saved = {name: queue["URL"] for name, queue in settings.RQ_QUEUES.items()}
    redis = Redis.from_url(url)
    redis.flushdb()  # experiment ids repeat once the database rolls back: start clean, and leave clean
    for queue in settings.RQ_QUEUES.values():
        queue["URL"] = url
    try:
        with time_machine.travel(frozen_start(), tick=False) as traveller:
            yield InProcessLab(traveller)
    finally:
        for name, queue in settings.RQ_QUEUES.items():
            queue["URL"] = saved[name]
        redis.flushdb()
    assert not suicides, "a job in the in-process engine tried to SIGKILL its process: set its crash rates to 0"


# Browser: Playwright's own Chromium when installed, else Debian's (SYSTEM_CHROMIUMS).
def _playwright_chromium_installed() -> bool:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        return Path(p.chromium.executable_path).exists()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    args = {
        **browser_type_launch_args,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }
    if _playwright_chromium_installed():
        return args
    for executable in SYSTEM_CHROMIUMS:
        if Path(executable).exists():
            return {**args, "executable_path": executable}
    reason = (
        "no browser: neither Playwright's Chromium (`playwright install chromium`) nor Debian's "
        "(apt-get install chromium-headless-shell, or chromium)"
    )
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    print(f"\n!!! SKIPPING BROWSER TESTS: {reason} !!!\n", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture
def screenshot(page):
    """Save a full-page screenshot under artifacts/screenshots/ (git-ignored)."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
