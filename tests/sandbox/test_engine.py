"""The Lab's RQ path run in process (tests/sandbox/engine.py): retries, the DLQ, redrive, idempotency,
admission and accounting, on a clock the test moves. Nothing here waits out a backoff, and nothing
asserts a duration the test measured: gaps are read off the controlled clock and RQ's schedule."""

import itertools
import threading

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from prepsite.visitor import Visitor
from sandbox.delivery.rq import REDRIVE_PER_SECOND
from sandbox.engine import experiments, live, rq_storage
from sandbox.engine.presets import PRESETS
from sandbox.models import LedgerEntry
from tests.sandbox.helpers import FAST, attempt_failure_times, start, together


def ledger_rows(experiment) -> int:
    return LedgerEntry.objects.filter(experiment=experiment).count()


def test_poison_job_lands_in_dlq_after_max_retries_with_the_computed_spacing(lab_engine):
    experiment = start(
        "poison", jobs=2, max_retries=2, backoff="fixed", backoff_base_s=2, backoff_cap_s=2, jitter="none", **FAST
    )
    state = lab_engine.finish(experiment)
    assert state.counters["dead_lettered"] == 2
    assert state.counters["attempts"] == 6
    assert sorted(state.dlq) == [1, 2]
    for job in (1, 2):
        times = attempt_failure_times(experiment, job)
        assert len(times) == 3
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # A 2 s interval; RQ's scheduler scores in whole seconds, so a retry may come up to 1 s early.
        assert all(1.0 <= gap <= 2.5 for gap in gaps), gaps
    assert ledger_rows(experiment) == 0
    assert state.accounting_holds()


def test_full_jitter_spreads_the_retry_schedule_and_no_jitter_bunches_it(lab_engine):
    common = dict(
        jobs=20, max_retries=1, backoff="fixed", backoff_base_s=8, backoff_cap_s=8, duration_ms=20, duration_spread_ms=0
    )
    bunched = start("poison", jitter="none", **common)
    spread = start("poison", jitter="full", **common)
    lab_engine.run_until(lambda: all(live.read(e.pk).counters.get("retries") == 20 for e in (bunched, spread)))
    none_hist = live.read(bunched.pk).retry_hist
    full_hist = live.read(spread.pk).retry_hist
    assert max(none_hist.values()) >= 8  # twenty retries land on one or two seconds
    assert max(full_hist.values()) <= 5
    assert len(full_hist) >= 6
    for state in lab_engine.finish_all(bunched, spread):
        assert state.counters["dead_lettered"] == 20
        assert state.accounting_holds()


@pytest.mark.django_db(transaction=True)  # two redrives from two threads, each with its own connection
def test_redrive_restores_the_retry_budget_and_a_double_redrive_runs_once(lab_engine):
    experiment = start(
        "poison", jobs=1, max_retries=1, backoff="fixed", backoff_base_s=1, backoff_cap_s=1, jitter="none", **FAST
    )
    state = lab_engine.finish(experiment)
    assert state.counters["attempts"] == 2
    results = together([lambda: experiments.experiment_redrive(experiment)] * 2)
    assert sorted(results) == [0, 1]
    lab_engine.run_until(
        lambda: live.read(experiment.pk).counters["attempts"] == 4 and live.read(experiment.pk).finished
    )
    state = live.read(experiment.pk)
    assert state.counters["redriven"] == 1
    assert state.counters["dead_lettered"] == 1
    assert state.dlq == [1]
    # It ran once more, not twice: RQ holds the job in its DLQ and nowhere it could run from again.
    queue = rq_storage.lab_queue()
    job_id = live.job_id_for(experiment.pk, 1)
    assert job_id in FailedJobRegistry(queue=queue).get_job_ids(cleanup=False)
    assert job_id not in queue.get_job_ids()
    assert job_id not in ScheduledJobRegistry(queue=queue).get_job_ids(cleanup=False)
    assert job_id not in StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)


def test_redrive_in_the_gap_before_rq_files_the_failure_waits_for_it(lab_engine):
    """RQ calls our failure callback (the dead letter is recorded) a moment before it files the job
    as failed. A redrive clicked in that gap must wait and redrive, not drop the job from the DLQ."""
    experiment = start("poison", jobs=1, max_retries=0, **FAST)
    lab_engine.finish(experiment)
    queue = rq_storage.lab_queue()
    registry = FailedJobRegistry(queue=queue)
    job_id = live.job_id_for(experiment.pk, 1)
    assert job_id in registry.get_job_ids(cleanup=False)
    registry.remove(job_id)  # back into the gap: recorded as dead-lettered, not yet filed by RQ
    job = Job.fetch(job_id, connection=queue.connection)
    refile = threading.Timer(0.5, lambda: registry.add(job, ttl=600))
    refile.start()
    assert experiments.experiment_redrive(experiment) == 1
    refile.join()
    assert live.read(experiment.pk).counters["redriven"] == 1


def test_discard_removes_a_dead_letter_for_good(lab_engine):
    experiment = start("poison", jobs=1, max_retries=0, **FAST)
    lab_engine.finish(experiment)
    assert experiments.experiment_discard(experiment, [1]) == 1
    assert experiments.experiment_discard(experiment, [1]) == 0
    assert live.read(experiment.pk).dlq == []
    assert experiments.experiment_redrive(experiment) == 0


@pytest.mark.parametrize(("idempotency", "expect_double"), [("on", False), ("off", True)])
def test_duplicate_delivery_double_charges_only_without_idempotency(lab_engine, idempotency, expect_double):
    experiment = start("duplicates", jobs=10, duplicate_rate=1.0, idempotency=idempotency, **FAST)
    c = lab_engine.finish(experiment).counters
    assert c["duplicates_delivered"] == 10
    charged_orders = LedgerEntry.objects.filter(experiment=experiment).values("order_number").distinct().count()
    assert charged_orders == 10
    if expect_double:
        assert c["double_charges"] == 10  # every message delivered twice, nothing to stop the second charge
        assert ledger_rows(experiment) == 20
    else:
        assert c["double_charges"] == 0
        assert c["duplicates_suppressed"] == 10
        assert ledger_rows(experiment) == 10


def test_spike_sheds_everything_above_the_queue_cap_and_loses_nothing(lab_engine):
    experiment = start("spike", jobs=60, queue_cap=15, **FAST)
    state = lab_engine.finish(experiment)
    c = state.counters
    assert c["rejected"] == 60 - 15
    assert c["enqueued"] == 15
    assert c["succeeded"] == 15
    assert ledger_rows(experiment) == 15
    assert state.accounting_holds()


# Presets whose subject is a process stay on the real pool: a crash SIGKILLs the work-horse (here it
# would be this process) and a timeout is a real SIGALRM in the horse; the stream and log presets need
# the consumer processes. tests/sandbox/test_experiments.py and test_delivery_models.py run those.
IN_PROCESS_PRESETS = [
    name
    for name, preset in PRESETS.items()
    if preset.parameters()["model"] == "rq"
    and name not in {"crash", "timeout"}
    and preset.parameters().get("workflow", "none") == "none"  # their deaths are SIGKILLs: test_workflows.py
]


@pytest.mark.parametrize("name", IN_PROCESS_PRESETS)
def test_accounting_invariant_holds_for_every_rq_preset(lab_engine, name):
    overrides = {"jobs": min(PRESETS[name].parameters()["jobs"], 8), "backoff_cap_s": 2, "backoff_base_s": 1, **FAST}
    if name == "spike":
        overrides.update(jobs=20, queue_cap=5)
    experiment = start(name, **overrides)
    state = lab_engine.finish(experiment)
    assert_accounts(experiment, state)


@pytest.mark.parametrize("seed", [99, 2026, 7])
def test_accounting_invariant_holds_under_random_faults(lab_engine, seed):
    experiment = start("happy", seed=seed, jobs=20, failure_rate=0.3, poison_rate=0.1, duplicate_rate=0.3,
                       max_retries=2, backoff_base_s=1, backoff_cap_s=2, idempotency="on", **FAST)  # fmt: skip
    state = lab_engine.finish(experiment)
    assert_accounts(experiment, state)
    assert state.counters["dead_lettered"] > 0  # the faults really happened
    assert state.counters["duplicates_delivered"] > 0


def assert_accounts(experiment, state: live.LiveState) -> None:
    c = state.counters
    assert c["requested"] == c["enqueued"] + c["rejected"], experiment.preset
    assert c["enqueued"] == c["succeeded"] + c["dead_lettered"] + c["stopped"], experiment.preset
    assert c["succeeded"] == LedgerEntry.objects.filter(experiment=experiment).values("order_number").distinct().count()
    if experiment.params["idempotency"] == "on":
        assert c["double_charges"] == 0
    experiment.refresh_from_db()
    assert experiment.status == "finished"
    assert experiment.summary["succeeded"] == c["succeeded"]


def test_limits_answer_with_a_clear_message(lab_engine):
    owner = Visitor(anon_id="visitor-limits")
    slow = {**PRESETS["happy"].parameters(), "jobs": 2, "duration_ms": 3000, "duration_spread_ms": 0}
    started = [
        experiments.experiment_start(owner=owner, limit_key="ip:192.0.2.7", preset="happy", params=slow)
        for _ in range(3)
    ]
    with pytest.raises(experiments.LimitExceeded, match="already have 3 experiments running"):
        experiments.experiment_start(owner=owner, limit_key="ip:192.0.2.7", preset="happy", params=slow)
    for experiment in started:
        assert experiments.experiment_stop(experiment) == 2  # nothing ran: both jobs come off the queue
        assert live.read(experiment.pk).finished
    experiments.experiment_start(owner=owner, limit_key="ip:192.0.2.7", preset="happy", params=slow)


def test_redrive_releases_a_large_dlq_in_paced_batches(lab_engine):
    experiment = start("poison", jobs=30, max_retries=0, duration_ms=5, duration_spread_ms=0)
    lab_engine.finish(experiment)
    assert experiments.experiment_redrive(experiment) == 30
    scheduled = ScheduledJobRegistry(queue=rq_storage.lab_queue()).get_job_ids(cleanup=False)
    paced = [job_id for job_id in scheduled if job_id.startswith(f"lab-{experiment.pk}-")]
    assert len(paced) == 30 - REDRIVE_PER_SECOND
    lab_engine.run_until(lambda: live.read(experiment.pk).counters["attempts"] == 60)
    state = live.read(experiment.pk)
    assert state.finished
    assert state.counters["dead_lettered"] == 30
