"""The Lab engine where a process is the subject: real work-horses, timeouts, SIGKILLs and a dead worker,
on a real rqworker-pool with its scheduler and the janitor. The rest of the RQ path runs in process
(test_engine.py)."""

import os
import signal

import pytest
from rq import Worker

from prepsite.redis_conn import get_redis
from sandbox.engine import experiments, live
from sandbox.models import LedgerEntry
from tests.conftest import STATE
from tests.sandbox.helpers import start, wait_finished, wait_state

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


def ledger_rows(experiment) -> int:
    return LedgerEntry.objects.filter(experiment=experiment).count()


def test_timeouts_are_real_job_timeouts_and_follow_the_retry_path(rq_workers):
    experiment = start("timeout", jobs=2, duration_ms=2500, timeout_s=1, max_retries=1, backoff_base_s=1)
    state = wait_finished(experiment, 40)
    assert state.counters["timeouts"] == 4
    assert state.counters["dead_lettered"] == 2
    marks = live.job_marks(experiment.pk, [1])[1]
    assert [m["r"] for m in marks] == ["timeout", "timeout"]
    assert "JobTimeoutException" in marks[0]["e"]


def test_killed_work_horse_is_retried_then_dead_lettered(rq_workers):
    experiment = start(
        "crash",
        jobs=2,
        crash_rate=1.0,
        duration_ms=400,
        duration_spread_ms=0,
        max_retries=1,
        backoff_base_s=1,
        backoff_cap_s=1,
    )
    state = wait_finished(experiment, 40)
    assert state.counters["crashes"] == 4
    assert state.counters["dead_lettered"] == 2
    mark = live.job_marks(experiment.pk, [1])[1][0]
    assert mark["r"] == "crash"
    assert "waitpid" in mark["e"]
    assert ledger_rows(experiment) == 0


def test_crash_button_kills_the_running_work_horse_and_the_job_is_retried(rq_workers):
    experiment = start(
        "happy",
        jobs=1,
        duration_ms=4000,
        duration_spread_ms=0,
        max_retries=2,
        backoff="fixed",
        backoff_base_s=1,
        jitter="none",
    )
    wait_state(experiment, lambda s: 1 in s.running, 20, "job 1 to run")
    assert experiments.job_crash(experiment, 1)
    state = wait_finished(experiment, 30)
    marks = live.job_marks(experiment.pk, [1])[1]
    assert [m["r"] for m in marks] == ["crash", "ok"]
    assert state.counters["succeeded"] == 1
    assert ledger_rows(experiment) == 1


def test_a_whole_killed_worker_is_recovered_by_the_janitor_and_charges_once(rq_workers):
    experiment = start(
        "happy",
        jobs=1,
        duration_ms=6000,
        duration_spread_ms=0,
        timeout_s=10,
        max_retries=2,
        backoff="fixed",
        backoff_base_s=1,
        jitter="none",
    )
    state = wait_state(experiment, lambda s: 1 in s.running, 20, "job 1 to run")
    running = state.running[1]
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + running["worker"], connection=get_redis())
    os.kill(worker.pid, signal.SIGKILL)  # the whole worker: parent first, then its work-horse
    os.kill(running["pid"], signal.SIGKILL)
    wait_state(experiment, lambda s: s.counters["attempts"] >= 2, 30, "the abandoned job to run again")
    state = wait_finished(experiment, 30)
    # The janitor's recovery, not RQ's own (which needs 60 s+ and a registry cleanup).
    log = (STATE["workdir"] / "workers.log").read_text(errors="replace")
    assert f"janitor: recovered abandoned jobs ['{live.job_id_for(experiment.pk, 1)}']" in log
    assert state.counters["recovered"] == 1
    assert state.counters["succeeded"] == 1
    assert ledger_rows(experiment) == 1
    assert [m["r"] for m in live.job_marks(experiment.pk, [1])[1]] == ["abandoned", "ok"]
