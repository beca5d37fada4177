"""The Lab engine against a real Redis, a real rqworker-pool (with its scheduler) and the janitor."""

import functools
import itertools
import os
import signal
import threading
import time

import pytest
from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from prepsite.redis_conn import get_redis
from prepsite.visitor import Visitor
from sandbox import experiments, live
from sandbox.models import LedgerEntry
from sandbox.presets import PRESETS
from tests.conftest import wait_for
from tests.sandbox.helpers import FAST, attempt_failure_times, start, wait_finished, wait_state

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


def ledger_rows(experiment) -> int:
    return LedgerEntry.objects.filter(experiment=experiment).count()


def test_poison_job_lands_in_dlq_after_max_retries_with_the_computed_spacing(rq_workers):
    experiment = start(
        "poison", jobs=2, max_retries=2, backoff="fixed", backoff_base_s=2, backoff_cap_s=2, jitter="none", **FAST
    )
    state = wait_finished(experiment, 40)
    assert state.counters["dead_lettered"] == 2
    assert state.counters["attempts"] == 6
    assert sorted(state.dlq) == [1, 2]
    for job in (1, 2):
        times = attempt_failure_times(experiment, job)
        assert len(times) == 3
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(1.0 <= gap <= 3.5 for gap in gaps), gaps  # 2 s interval, whole-second scheduler, ±1 s
    assert ledger_rows(experiment) == 0
    assert state.accounting_holds()


def test_full_jitter_spreads_real_retry_times_and_no_jitter_bunches_them(rq_workers):
    common = dict(
        jobs=20, max_retries=1, backoff="fixed", backoff_base_s=8, backoff_cap_s=8, duration_ms=20, duration_spread_ms=0
    )
    bunched = start("poison", jitter="none", **common)
    spread = start("poison", jitter="full", **common)
    for experiment in (bunched, spread):
        wait_state(experiment, lambda s: s.counters["retries"] == 20, 30, "20 retries to be scheduled")
    none_hist = live.read(bunched.pk).retry_hist
    full_hist = live.read(spread.pk).retry_hist
    experiments.experiment_stop(bunched)
    experiments.experiment_stop(spread)
    assert max(none_hist.values()) >= 8  # twenty retries land on one or two seconds
    assert max(full_hist.values()) <= 5
    assert len(full_hist) >= 6
    for experiment in (bunched, spread):
        wait_finished(experiment, 30)


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


def test_a_whole_killed_worker_is_recovered_within_30_seconds_and_charges_once(rq_workers):
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
    killed_at = time.monotonic()
    os.kill(worker.pid, signal.SIGKILL)  # the whole worker: parent first, then its work-horse
    os.kill(running["pid"], signal.SIGKILL)
    wait_state(experiment, lambda s: s.counters["attempts"] >= 2, 30, "the abandoned job to run again")
    recovered_after = time.monotonic() - killed_at
    state = wait_finished(experiment, 30)
    assert recovered_after <= 30
    assert state.counters["recovered"] == 1
    assert state.counters["succeeded"] == 1
    assert ledger_rows(experiment) == 1
    assert [m["r"] for m in live.job_marks(experiment.pk, [1])[1]] == ["abandoned", "ok"]


def test_redrive_restores_the_retry_budget_and_a_double_redrive_runs_once(rq_workers):
    experiment = start(
        "poison", jobs=1, max_retries=1, backoff="fixed", backoff_base_s=1, backoff_cap_s=1, jitter="none", **FAST
    )
    state = wait_finished(experiment, 30)
    assert state.counters["attempts"] == 2
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(experiments.experiment_redrive(experiment))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    state = wait_state(
        experiment, lambda s: s.counters["attempts"] == 4 and s.finished, 30, "redriven job to use its whole budget"
    )
    assert state.counters["redriven"] == 1
    assert state.counters["dead_lettered"] == 1
    assert state.dlq == [1]
    # It ran once more, not twice: RQ holds the job in its DLQ and nowhere it could run from again.
    queue = experiments.lab_queue()
    job_id = live.job_id_for(experiment.pk, 1)
    # RQ files the job in its failed registry just after our on_failure callback has recorded the dead letter.
    registry = FailedJobRegistry(queue=queue)
    wait_for(lambda: job_id in registry.get_job_ids(cleanup=False), 10, message="RQ to file the job as failed")
    assert job_id not in queue.get_job_ids()
    assert job_id not in ScheduledJobRegistry(queue=queue).get_job_ids(cleanup=False)
    assert job_id not in StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)


def test_redrive_in_the_gap_before_rq_files_the_failure_waits_for_it(rq_workers):
    """RQ calls our failure callback (the dead letter is recorded) a moment before it files the job
    as failed. A redrive clicked in that gap must wait and redrive, not drop the job from the DLQ."""
    experiment = start("poison", jobs=1, max_retries=0, **FAST)
    wait_finished(experiment, 20)
    queue = experiments.lab_queue()
    registry = FailedJobRegistry(queue=queue)
    job_id = live.job_id_for(experiment.pk, 1)
    wait_for(lambda: job_id in registry.get_job_ids(cleanup=False), 10, message="RQ to file the job as failed")
    registry.remove(job_id)  # back into the gap: recorded as dead-lettered, not yet filed by RQ
    job = Job.fetch(job_id, connection=queue.connection)
    refile = threading.Timer(0.5, lambda: registry.add(job, ttl=600))
    refile.start()
    assert experiments.experiment_redrive(experiment) == 1
    refile.join()
    assert live.read(experiment.pk).counters["redriven"] == 1


def test_discard_removes_a_dead_letter_for_good(rq_workers):
    experiment = start("poison", jobs=1, max_retries=0, **FAST)
    wait_finished(experiment, 20)
    assert experiments.experiment_discard(experiment, [1]) == 1
    assert experiments.experiment_discard(experiment, [1]) == 0
    assert live.read(experiment.pk).dlq == []
    assert experiments.experiment_redrive(experiment) == 0


@pytest.mark.parametrize(("idempotency", "expect_double"), [("on", False), ("off", True)])
def test_duplicate_delivery_double_charges_only_without_idempotency(rq_workers, idempotency, expect_double):
    experiment = start("duplicates", jobs=10, duplicate_rate=1.0, idempotency=idempotency, **FAST)
    state = wait_finished(experiment, 40)
    c = state.counters
    assert c["duplicates_delivered"] == 10
    charged_orders = LedgerEntry.objects.filter(experiment=experiment).values("order_number").distinct().count()
    assert charged_orders == 10
    if expect_double:
        assert c["double_charges"] > 0
        assert ledger_rows(experiment) == 10 + c["double_charges"]
    else:
        assert c["double_charges"] == 0
        assert c["duplicates_suppressed"] == 10
        assert ledger_rows(experiment) == 10


def test_spike_sheds_everything_above_the_queue_cap_and_loses_nothing(rq_workers):
    experiment = start("spike", jobs=60, queue_cap=15, **FAST)
    state = wait_finished(experiment, 40)
    c = state.counters
    assert c["rejected"] == 60 - 15
    assert c["enqueued"] == 15
    assert c["succeeded"] == 15
    assert ledger_rows(experiment) == 15
    assert state.accounting_holds()


def test_accounting_invariant_holds_for_every_preset_and_random_faults(rq_workers):
    runs = []
    for name in PRESETS:
        overrides = {"jobs": min(PRESETS[name].parameters()["jobs"], 8), "backoff_cap_s": 2, "backoff_base_s": 1}
        if name == "spike":
            overrides.update(jobs=20, queue_cap=5)
        if name in {"timeout", "crash"}:
            overrides.update(duration_ms=1500, timeout_s=1, max_retries=1)
        else:
            overrides.update(FAST)
        runs.append(start(name, **overrides))
    runs.append(start("happy", seed=99, jobs=20, failure_rate=0.3, poison_rate=0.1, crash_rate=0.1, duplicate_rate=0.3,
                      max_retries=2, backoff_base_s=1, backoff_cap_s=2, idempotency="on", **FAST))  # fmt: skip
    for experiment in runs:
        state = wait_finished(experiment, 150)
        c = state.counters
        assert c["requested"] == c["enqueued"] + c["rejected"], experiment.preset
        assert c["enqueued"] == c["succeeded"] + c["dead_lettered"] + c["stopped"], experiment.preset
        assert (
            c["succeeded"]
            == LedgerEntry.objects.filter(experiment=experiment).values("order_number").distinct().count()
        )
        if experiment.params["idempotency"] == "on":
            assert c["double_charges"] == 0
        # The job that finished the run marks the row a moment after its Redis bookkeeping.
        wait_for(lambda e=experiment: e.refresh_from_db() or e.status == "finished", 10, message="row marked finished")
        assert experiment.summary["succeeded"] == c["succeeded"]


def test_limits_answer_with_a_clear_message(rq_workers):
    owner = Visitor(anon_id="visitor-limits")
    slow = {**PRESETS["happy"].parameters(), "jobs": 2, "duration_ms": 3000, "duration_spread_ms": 0}
    start = functools.partial(experiments.experiment_start, owner=owner, limit_key="ip:192.0.2.7", preset="happy")
    started = [start(params=slow) for _ in range(3)]
    try:
        with pytest.raises(experiments.LimitExceeded, match="already have 3 experiments running"):
            started.append(start(params=slow))
    finally:  # even on failure: 3 s jobs left running would starve the tests after this one
        for experiment in started:
            experiments.experiment_stop(experiment)
        for experiment in started:
            wait_finished(experiment, 30)


def test_redrive_releases_a_large_dlq_in_paced_batches(rq_workers):
    from rq.registry import ScheduledJobRegistry

    experiment = start("poison", jobs=30, max_retries=0, duration_ms=5, duration_spread_ms=0)
    wait_finished(experiment, 40)
    assert experiments.experiment_redrive(experiment) == 30
    scheduled = ScheduledJobRegistry(queue=experiments.lab_queue()).get_job_ids(cleanup=False)
    paced = [job_id for job_id in scheduled if job_id.startswith(f"lab-{experiment.pk}-")]
    assert len(paced) == 30 - experiments.REDRIVE_PER_SECOND
    state = wait_state(
        experiment, lambda s: s.finished and s.counters["attempts"] == 60, 30, "all redriven jobs to run"
    )
    assert state.counters["dead_lettered"] == 30
