"""Dual write vs outbox (sandbox.workflows): the request handler, the relay and the consumer on real RQ jobs
and the site's own database. Deaths are SIGKILLs of a forked work-horse, so the runs with them use the
real worker pool; the rest run in process (tests/sandbox/engine.py)."""

import json

import pytest
from django.core.management import call_command

from sandbox.engine import live
from sandbox.models import Experiment
from sandbox.workflows import outbox
from sandbox.workflows.models import OutboxMessage, WorkflowEffect, WorkflowOrder
from tests.sandbox.helpers import start, wait_finished

QUIET = {"commit_crash_rate": 0.0, "relay_crash_rate": 0.0}


def faulted(experiment: Experiment) -> tuple[set[int], set[int]]:
    """(orders whose request dies after its COMMIT, orders whose transaction rolls back), from the fault plan."""
    crashes, rollbacks = set(), set()
    for job in range(1, experiment.params["jobs"] + 1):
        crash, rollback = outbox.faults(experiment.params, experiment.seed, job, 1)
        (crashes if crash else rollbacks if rollback else set()).add(job)
    return crashes, rollbacks


def assert_accounts(experiment: Experiment, state: live.LiveState) -> dict:
    c = state.counters
    assert c["enqueued"] == c["succeeded"] + c["dead_lettered"] + c["stopped"]
    experiment.refresh_from_db()
    assert experiment.status == "finished"
    summary = experiment.summary
    orders = WorkflowOrder.objects.filter(experiment=experiment).count()
    assert summary["orders"] == orders
    crashes, rollbacks = faulted(experiment)
    # A request succeeds unless it died or rolled back; an order exists unless its transaction rolled back.
    assert c["succeeded"] == experiment.params["jobs"] - len(crashes) - len(rollbacks)
    assert orders == experiment.params["jobs"] - len(rollbacks)
    assert summary["double_effects"] == (0 if experiment.params["idempotency"] == "on" else summary["double_effects"])
    # The consumer acted on every event published (ghosts included), and on nothing else.
    assert WorkflowEffect.objects.filter(experiment=experiment).values("event_key").distinct().count() == (
        summary["events_published"] - summary["duplicates"]
    )
    return summary


# on_commit callbacks run only when a real transaction commits: no test-wide transaction around these.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("publish_at", ["on_commit", "in_transaction"])
def test_a_rollback_leaves_a_ghost_only_when_dual_write_publishes_inside_the_transaction(lab_engine, publish_at):
    experiment = start("dual-write", seed=11, publish_at=publish_at, rollback_rate=0.3, **QUIET)
    state = lab_engine.finish(experiment)
    summary = assert_accounts(experiment, state)
    _, rollbacks = faulted(experiment)
    assert rollbacks  # the fault really happened
    assert summary["lost"] == 0
    assert summary["ghosts"] == (len(rollbacks) if publish_at == "in_transaction" else 0)
    assert state.counters["dead_lettered"] == len(rollbacks)


@pytest.mark.django_db(transaction=True)
def test_the_outbox_publishes_every_committed_order_once_and_no_rolled_back_one(lab_engine):
    experiment = start("outbox", seed=11, rollback_rate=0.3, **QUIET)
    state = lab_engine.finish(experiment)
    summary = assert_accounts(experiment, state)
    _, rollbacks = faulted(experiment)
    assert summary["lost"] == summary["ghosts"] == summary["duplicates"] == summary["unsent"] == 0
    assert summary["events_published"] == experiment.params["jobs"] - len(rollbacks)
    assert not OutboxMessage.objects.filter(experiment=experiment, sent_at__isnull=True).exists()


FAULTS = {"jobs": 20, "arrival_per_s": 20.0, "commit_crash_rate": 0.2, "rollback_rate": 0.2, "relay_crash_rate": 0.3}


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", [5, 99])
def test_under_random_faults_the_outbox_loses_nothing_where_the_dual_write_does(rq_workers, seed):
    dual = start("dual-write", seed=seed, **FAULTS)
    box = start("outbox", seed=seed, **FAULTS)
    crashes, rollbacks = faulted(dual)
    assert crashes  # the same plan hits both runs, and it has both faults
    assert rollbacks
    assert faulted(box) == (crashes, rollbacks)
    dual_summary = assert_accounts(dual, wait_finished(dual, 120))
    box_summary = assert_accounts(box, wait_finished(box, 120))
    # Dual write after the COMMIT: every request that died after committing left an order nobody hears about.
    assert dual_summary["lost"] == len(crashes)
    assert dual_summary["ghosts"] == 0
    assert box_summary["lost"] == box_summary["ghosts"] == box_summary["unsent"] == 0
    assert box_summary["double_effects"] == 0  # the consumer is idempotent
    assert box_summary["events_published"] == FAULTS["jobs"] - len(rollbacks) + box_summary["duplicates"]
    for summary in (dual_summary, box_summary):
        assert summary["dead_lettered"] == len(crashes) + len(rollbacks)
        assert summary["crashes"] == len(crashes)


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_cli_json_reports_the_outbox_counters_with_the_accounting_fields(rq_workers, capsys):
    call_command("experiment", "run", "outbox", "--jobs", "12", "--seed", "2026", "--set", "relay_crash_rate=0.5",
                 "--set", "idempotency=off", "--json")  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in ("enqueued", "succeeded", "dead_lettered", "stopped", "lost", "ghosts", "duplicates", "double_effects",
                 "relay_lag_p95_ms", "relay_lag_max_ms"):  # fmt: skip
        assert name in summary, name
    assert summary["finished"] is True
    assert summary["enqueued"] == summary["succeeded"] + summary["dead_lettered"] + summary["stopped"]
    assert summary["lost"] == summary["ghosts"] == 0
    assert summary["duplicates"] > 0  # the relay died between publishing and marking sent
    assert summary["double_effects"] == summary["duplicates"]  # and the consumer was not idempotent
    assert summary["relay_lag_max_ms"] > 0
