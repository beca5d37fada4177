"""The fan-in family (sandbox.workflows.fanin): children are real RQ jobs that fail, retry and are delivered
twice; the atomic design runs each batch's final step exactly once and never early; the naive one does not."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse
from rq.job import Job

from prepsite.visitor import Visitor
from sandbox.engine import experiments, fairshare, limits, live, rq_storage
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from sandbox.params import ExperimentForm
from sandbox.workflows import fanin
from sandbox.workflows.models import FanInBatch, FanInChild, FanInFinal
from sandbox.workflows.outbox import chance
from tests.conftest import wait_for
from tests.sandbox.helpers import anonymous_visitor, start, wait_finished

FAULTS = {"jobs": 6, "fan_out": 5, "child_fail_rate": 0.3, "child_duplicate_rate": 0.4, "duration_ms": 20}


def planned(experiment: Experiment) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(children that fail on every attempt, children delivered twice), from the fault plan."""
    p, seed = experiment.params, experiment.seed
    dead, twice = set(), set()
    for batch in range(1, p["jobs"] + 1):
        for child in range(1, p["fan_out"] + 1):
            if all(
                chance(seed, batch, child, a, "child-fails") < p["child_fail_rate"]
                for a in range(1, p["max_retries"] + 2)
            ):
                dead.add((batch, child))
            elif chance(seed, batch, child, "child-twice") < p["child_duplicate_rate"]:
                twice.add((batch, child))
    return dead, twice


def assert_accounts(experiment: Experiment, state) -> dict:
    c = state.counters
    assert c["enqueued"] == c["succeeded"] + c["dead_lettered"] + c["stopped"]
    # The job that ends a run writes the row just after the record; on the real pool a reader can fall between.
    wait_for(lambda: Experiment.objects.filter(pk=experiment.pk, status="finished").exists(), 15, message="the row")
    experiment.refresh_from_db()
    summary = experiment.summary
    dead, twice = planned(experiment)
    assert summary["batches"] == experiment.params["jobs"]
    assert summary["children_dead"] == len(dead)
    assert summary["children_done"] == summary["children"] - len(dead)
    assert summary["batches_stuck"] == len({batch for batch, _ in dead})
    assert c["child_redelivered"] == len(twice) == c["child_duplicates_seen"]
    return summary


@pytest.mark.parametrize("seed", [4, 26])
def test_the_atomic_fan_in_runs_each_final_once_and_never_early(lab_engine, seed):
    experiment = start("fan-in", seed=seed, fan_in="atomic", **FAULTS)
    summary = assert_accounts(experiment, lab_engine.finish(experiment))
    _, twice = planned(experiment)
    assert twice  # the faults really happened
    assert summary["final_runs"] == summary["batches"] - summary["batches_stuck"]
    assert summary["early_finals"] == summary["batches_finalized_twice"] == 0
    for final in FanInFinal.objects.filter(experiment=experiment):  # after its batch's last child, by the clock
        last = max(FanInChild.objects.filter(experiment=experiment, batch=final.batch).values_list("at", flat=True))
        assert final.at >= last


def test_the_naive_fan_in_closes_batches_early_and_twice_under_duplicate_delivery(lab_engine):
    experiment = start("fan-in", seed=26, fan_in="naive", **FAULTS)
    summary = assert_accounts(experiment, lab_engine.finish(experiment))
    assert summary["early_finals"] > 0
    assert summary["final_runs"] > summary["batches"] - summary["batches_stuck"]


def test_the_children_count_against_the_shared_lab_and_run_in_the_visitors_fair_share(lab_engine):
    big = {**PRESETS["fan-in"].parameters(), "preset": "fan-in", "jobs": 100, "fan_out": 20, "duration_ms": 400}
    form = ExperimentForm(data=big)
    assert not form.is_valid()  # 100 batches x 20 children at their worst do not fit one run's worker-seconds
    assert "worker-seconds" in str(form.errors)
    assert ExperimentForm(data={**big, "workflow": "none"}).is_valid()  # without the children they would
    wide = {**PRESETS["fan-in"].parameters(), "jobs": 300, "fan_out": 20, "duration_ms": 1, "max_retries": 0}
    with pytest.raises(experiments.LimitExceeded, match="jobs still to run"):  # 6000 children > the global limit
        experiments.experiment_start(
            owner=Visitor(anon_id="fan"), limit_key="ip:192.0.2.9", preset="fan-in", params=wide
        )
    experiment = experiments.experiment_start(
        owner=Visitor(anon_id="fan"), limit_key="ip:192.0.2.9", preset="fan-in",
        params={**PRESETS["fan-in"].parameters(), "jobs": 1, "fan_out": 2},
    )  # fmt: skip
    lab_engine.run_until(
        lambda: rq_storage.job_exists(rq_storage.lab_queue().connection, fanin.child_job_id(experiment.pk, 1, 1))
    )
    child = Job.fetch(fanin.child_job_id(experiment.pk, 1, 1), connection=rq_storage.lab_queue().connection)
    assert child.rate_limit_key.endswith(fairshare.rate_key("ip:192.0.2.9"))
    lab_engine.finish(experiment)
    assert limits.GLOBAL_OPEN_JOBS < 300 * 20


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_on_the_real_pool_the_atomic_fan_in_closes_each_batch_once(rq_workers, capsys):
    call_command("experiment", "run", "fan-in", "--seed", "26", "--set", "fan_in=atomic", "--set", "jobs=8",
                 "--set", "child_duplicate_rate=0.5", "--set", "duration_ms=20", "--json")  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in ("enqueued", "succeeded", "dead_lettered", "stopped", "batches", "final_runs", "early_finals"):
        assert name in summary, name
    assert summary["finished"] is True
    assert summary["final_runs"] == summary["batches"] - summary["batches_stuck"]
    assert summary["early_finals"] == summary["batches_finalized_twice"] == 0
    experiment = Experiment.objects.get(pk=summary["id"])
    assert wait_finished(experiment).finished


def test_the_live_view_draws_each_batch_and_explains_the_final_step(lab_engine, client):
    owner = anonymous_visitor(client)
    experiment = start("fan-in", owner=owner, seed=26, fan_in="naive", **FAULTS)
    lab_engine.finish(experiment)
    response = client.get(reverse("sandbox:detail", args=[experiment.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Each batch: its children, then its final step" in body
    assert 'class="chart saga-lanes"' in body
    assert "The final step" in body
    assert 'data-counter="early_finals"' in body


def test_stopping_a_fan_in_run_ends_it_and_its_children_do_no_more_work(lab_engine):
    experiment = start(
        "fan-in", seed=4, jobs=2, fan_out=4, child_fail_rate=0.0, child_duplicate_rate=0.0, arrival_per_s=0.0
    )
    lab_engine.worker.work(burst=True, max_jobs=2, with_scheduler=False)  # the two parents, nothing more
    assert FanInBatch.objects.filter(experiment=experiment).count() == 2
    assert not FanInChild.objects.filter(experiment=experiment).exists()  # their children wait their turn
    experiments.experiment_stop(experiment)
    lab_engine.run_until(lambda: Experiment.objects.get(pk=experiment.pk).status == "finished")
    assert not FanInChild.objects.filter(experiment=experiment).exists()  # queued children found the stop flag
    assert live.read(experiment.pk).counters["child_runs"] == 8  # each ran, saw the stop, and did nothing
