"""Dual write vs outbox (sandbox.workflows): the request handler, the relay and the consumer on real RQ jobs
and the site's own database. Deaths are SIGKILLs of a forked work-horse, so the runs with them use the
real worker pool; the rest run in process (tests/sandbox/engine.py)."""

import json
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.urls import reverse
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from prepsite.visitor import Visitor
from sandbox.engine import experiments, fairshare, limits, live, rq_storage
from sandbox.engine.budget import WORKFLOW_TICKS
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from sandbox.params import ExperimentForm
from sandbox.workflows import outbox
from sandbox.workflows import run as workflow_run
from sandbox.workflows.models import OutboxMessage, WorkflowEffect, WorkflowOrder
from tests.conftest import wait_for
from tests.sandbox.helpers import anonymous_visitor, start, wait_finished

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
    # The job that ends a run writes the row just after the record; on the real pool a reader can fall between.
    wait_for(lambda: Experiment.objects.filter(pk=experiment.pk, status="finished").exists(), 15, message="the row")
    experiment.refresh_from_db()
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


# ---------------------------------------------------------------- the shared lab's limits still apply


def test_workflow_runs_count_against_the_visitors_running_limit_and_a_stop_ends_their_relay(lab_engine):
    owner = Visitor(anon_id="visitor-workflows")
    slow = {**PRESETS["outbox"].parameters(), "jobs": 2, "duration_ms": 3000, "arrival_per_s": 0.0}
    started = [
        experiments.experiment_start(owner=owner, limit_key="ip:192.0.2.26", preset="outbox", params=slow)
        for _ in range(limits.ACTIVE_PER_VISITOR)
    ]
    with pytest.raises(experiments.LimitExceeded, match="already have 3 experiments running"):
        experiments.experiment_start(owner=owner, limit_key="ip:192.0.2.26", preset="dual-write", params=slow)
    for experiment in started:
        experiments.experiment_stop(experiment)
    lab_engine.run_until(lambda: all(Experiment.objects.get(pk=e.pk).status == "finished" for e in started))
    scheduled = ScheduledJobRegistry(queue=rq_storage.lab_queue()).get_job_ids(cleanup=False)
    assert not [job_id for job_id in scheduled if job_id.startswith("lab-wf")]  # no relay keeps ticking
    experiments.experiment_start(owner=owner, limit_key="ip:192.0.2.26", preset="outbox", params=slow)


def test_the_relay_runs_inside_the_visitors_fair_share(lab_engine):
    experiment = experiments.experiment_start(
        owner=Visitor(anon_id="visitor-share"), limit_key="ip:192.0.2.27", preset="outbox",
        params={**PRESETS["outbox"].parameters(), "jobs": 1, **QUIET},
    )  # fmt: skip
    tick = Job.fetch(workflow_run.tick_job_id(experiment.pk, 1), connection=rq_storage.lab_queue().connection)
    assert tick.rate_limit_key.endswith(fairshare.rate_key("ip:192.0.2.27"))
    lab_engine.finish(experiment)


def test_the_relay_chain_is_bounded_even_if_requests_never_end(lab_engine):
    experiment = start("outbox", jobs=1, **QUIET)
    recorder = live.Recorder(experiment.pk)
    recorder.redis.hset(live.key(experiment.pk, "c"), "enqueued", 2)  # a request that will never end
    assert not workflow_run.tick(recorder, limit_key=experiment.limit_key, run="", n=1)
    assert workflow_run.tick(recorder, limit_key=experiment.limit_key, run="", n=WORKFLOW_TICKS)


def test_the_relay_ticks_are_charged_to_the_runs_worker_seconds():
    heavy = {**PRESETS["outbox"].parameters(), "preset": "outbox", "jobs": 170, "duration_ms": 5000, "timeout_s": 5}
    assert ExperimentForm(data={**heavy, "workflow": "none"}).is_valid()  # 850 worker-seconds alone
    form = ExperimentForm(data=heavy)
    assert not form.is_valid()
    assert "worker-seconds" in str(form.errors)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"model": "stream"}, "workflow", "run on the rq model only"),
        ({"workflow": "saga-ish"}, "workflow", "Select a valid choice"),
        ({"publish_at": "sometimes"}, "publish_at", "Select a valid choice"),
        ({"commit_crash_rate": "2"}, "commit_crash_rate", "less than or equal to 1"),
        ({"relay_crash_rate": "-0.1"}, "relay_crash_rate", "greater than or equal to 0"),
    ],
)
def test_bad_workflow_input_is_a_400_with_a_message(client, overrides, field, message):
    data = {**PRESETS["outbox"].parameters(), "preset": "outbox", "seed": "7", "prediction": "", **overrides}
    response = client.post(reverse("sandbox:start"), {name: str(value) for name, value in data.items()})
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert message in response.content.decode()
    assert not Experiment.objects.exists()


# ---------------------------------------------------------------- the relay's claim


@pytest.mark.django_db(transaction=True)
def test_a_relay_skips_the_rows_another_relay_holds(lab_engine):
    experiment = start("outbox", jobs=1, **QUIET)
    OutboxMessage.objects.bulk_create([OutboxMessage(experiment=experiment, order_number=n) for n in range(2, 8)])
    held = list(OutboxMessage.objects.filter(experiment=experiment).order_by("id").values_list("pk", flat=True)[:3])
    recorder = live.Recorder(experiment.pk)
    params = {**experiment.params, "relay_crash_rate": 0.0}
    if connection.features.has_select_for_update_skip_locked:  # PostgreSQL: another relay's open transaction
        locked, release = threading.Event(), threading.Event()

        def other_relay():
            with transaction.atomic():
                list(OutboxMessage.objects.select_for_update().filter(pk__in=held))
                locked.set()
                release.wait(10)
            connection.close()

        thread = threading.Thread(target=other_relay)
        thread.start()
        assert locked.wait(10)
        try:
            published = outbox.relay_pass(recorder, params=params, seed=experiment.seed)
        finally:
            release.set()
            thread.join()
    else:  # SQLite: another relay's lease
        OutboxMessage.objects.filter(pk__in=held).update(lease_until=time.time() + 30, lease_owner="other")
        published = outbox.relay_pass(recorder, params=params, seed=experiment.seed)
    assert published == 6 - len(held)  # every row but the held ones (order 1's request has not run)
    assert set(OutboxMessage.objects.filter(sent_at__isnull=True).values_list("pk", flat=True)) == set(held)


@pytest.mark.django_db(transaction=True)
def test_compare_shows_dual_write_and_outbox_counters_side_by_side(lab_engine, client):
    owner = anonymous_visitor(client)
    dual = start("dual-write", owner=owner, seed=11, jobs=10, publish_at="in_transaction", rollback_rate=0.4, **QUIET)
    box = start("outbox", owner=owner, seed=11, jobs=10, rollback_rate=0.4, **QUIET)
    lab_engine.finish_all(dual, box)
    response = client.get(reverse("sandbox:compare"), {"a": dual.pk, "b": box.pk})
    assert response.status_code == 200
    rows = {row["key"]: row for row in response.context["outcomes"]}
    assert rows["ghosts"]["a"] > 0
    assert rows["ghosts"]["b"] == 0
    assert rows["lost"]["a"] == rows["lost"]["b"] == 0
    assert "ghost events" in response.content.decode()
