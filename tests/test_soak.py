"""Soak: mixed random faults plus whole-worker SIGKILLs while several experiments run."""

import contextlib
import os
import random
import signal
import time

import pytest

from prepsite.redis_conn import get_redis
from sandbox.models import LedgerEntry
from tests.sandbox.helpers import start, wait_finished

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]

FAULTS = dict(failure_rate=0.2, poison_rate=0.05, crash_rate=0.1, duplicate_rate=0.2, max_retries=3,
              backoff_base_s=1, backoff_cap_s=3, duration_ms=150, duration_spread_ms=100, timeout_s=5)  # fmt: skip


def kill_a_busy_worker(rng: random.Random) -> bool:
    """SIGKILL a whole worker (parent and work-horse) that is running a lab job, as a lost host would."""
    from rq import Worker

    busy = [w for w in Worker.all(connection=get_redis()) if w.get_current_job_id()]
    if not busy:
        return False
    worker = rng.choice(busy)
    job_id = worker.get_current_job_id()
    horse = get_redis().get(f"lab:beat:{job_id}")
    for pid in (worker.pid, int(horse) if horse else None):
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return True


def test_soak_with_worker_kills_keeps_every_job_in_exactly_one_terminal_state(rq_workers):
    rng = random.Random(2026)
    runs = [
        start("happy", seed=11, jobs=25, idempotency="on", **FAULTS),
        start("happy", seed=12, jobs=25, idempotency="on", **FAULTS),
        start("happy", seed=13, jobs=20, idempotency="off", **FAULTS),
    ]
    # Kill at random moments, but only when a worker is busy: watch closely so a busy moment is never missed.
    kills = 0
    next_kill = time.monotonic() + rng.uniform(2, 4)
    deadline = time.monotonic() + 40
    while kills < 3 and time.monotonic() < deadline:
        if time.monotonic() >= next_kill and kill_a_busy_worker(rng):
            kills += 1
            next_kill = time.monotonic() + rng.uniform(3, 6)
        time.sleep(0.05)
    assert kills >= 1
    for experiment in runs:
        state = wait_finished(experiment, 120)  # (times SLOW: inside the 300 s test timeout)
        c = state.counters
        assert c["requested"] == c["enqueued"] + c["rejected"]
        assert c["enqueued"] == c["succeeded"] + c["dead_lettered"] + c["stopped"]
        charged = LedgerEntry.objects.filter(experiment=experiment)
        assert charged.values("order_number").distinct().count() == c["succeeded"]
        if experiment.params["idempotency"] == "on":
            assert c["double_charges"] == 0
            assert charged.count() == c["succeeded"]  # no side effect ran twice, cleanup races included
