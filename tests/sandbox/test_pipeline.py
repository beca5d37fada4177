"""The pipeline family (sandbox.workflows.pipeline): three stages, a queue before each later one, one consumer per
stage as a chain of real RQ jobs. The accounting holds under random faults; a bound makes the front shed; the
stages run in the visitor's fair share and count against the shared lab's caps. The backlog's place and size
need real time and real workers, so those run on the pool."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse
from rq.job import Job

from prepsite.visitor import Visitor
from sandbox.engine import experiments, fairshare, limits, live, rq_storage
from sandbox.engine.budget import HORIZON_S, schedule_span_s
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from sandbox.params import ExperimentForm
from sandbox.workflows import pipeline
from tests.conftest import wait_for
from tests.sandbox.helpers import anonymous_visitor, start, wait_finished

FAULTS = {
    "jobs": 30,
    "arrival_per_s": 0.0,
    "duration_ms": 5,
    "stage_ms": 5,
    "slow_stage_ms": 10,
    "failure_rate": 0.2,
    "poison_rate": 0.05,
    "duplicate_rate": 0.3,
    "stage_fail_rate": 0.25,
    "max_retries": 2,
    "backoff_base_s": 1,
    "backoff_cap_s": 2,
}


def assert_accounts(experiment: Experiment, state: live.LiveState) -> dict:
    """Every message ends once at the front; every item the front handed on ends once after it."""
    c = state.counters
    assert c["enqueued"] == c["succeeded"] + c["dead_lettered"] + c["stopped"]
    # the front: each message that succeeded was handed to stage 2 or shed, once (a duplicate delivery is suppressed)
    assert c["done_stage1"] + c["shed"] == c["succeeded"]
    # after the front: each item handed on was done by stage 3, used up its retries at a stage, or was stopped
    assert c["done_stage1"] == c["done_stage3"] + c["stage_dead"] + c["pl_stopped"]
    assert c["done_stage2"] <= c["done_stage1"]
    assert pipeline.drained(experiment.pk, live.Recorder(experiment.pk).redis)
    wait_for(lambda: Experiment.objects.filter(pk=experiment.pk).exclude(status="running").exists(), 15, message="row")
    experiment.refresh_from_db()
    for name in ("enqueued", "succeeded", "dead_lettered", "stopped", "shed", "max_depth_stage2", "done_stage3"):
        assert name in experiment.summary, name
    return experiment.summary


@pytest.mark.parametrize(("seed", "bound"), [(3, 0), (26, 0), (3, 4), (41, 2)])
def test_every_item_ends_once_under_random_faults(lab_engine, seed, bound):
    experiment = start("pipeline", seed=seed, stage_bound=bound, **FAULTS)
    state = lab_engine.finish(experiment)
    summary = assert_accounts(experiment, state)
    c = state.counters
    assert c["dead_lettered"] > 0 or c["stage_retries"] > 0  # the faults really happened
    assert c["duplicates_delivered"] > 0
    if bound:  # all arrive at once: the front outruns stage 2, so a bound must shed, and no queue passes it
        assert summary["shed"] > 0
        assert summary["max_depth_stage2"] <= bound
        assert summary["max_depth_stage3"] <= bound
    else:
        assert summary["shed"] == 0


def test_an_arrival_never_wakes_a_parked_stage_so_one_stage_never_runs_two_consumers(lab_engine):
    """Stage 2 parked on a full queue 3; an item arrives from the front, then stage 3 makes room. Only the room may
    wake stage 2: woken by both, two stage-2 consumers passed the bound check at once (a queue bounded at 5 held 6)."""
    experiment = start("pipeline", seed=5, jobs=1, arrival_per_s=0.0, stage_bound=2)
    redis, pk = live.Recorder(experiment.pk).redis, experiment.pk
    params = {**experiment.params, "stage_bound": 2}
    for item in (101, 102):  # queue 3 full
        redis.rpush(live.key(pk, pipeline.QUEUE[3]), f"{item}:0")
    redis.rpush(live.key(pk, pipeline.QUEUE[2]), "103:0")
    redis.hset(live.key(pk, pipeline.BUSY), mapping={"2": "1", "3": "1"})
    assert pipeline._take_one(redis, pk, 2, params=params, seed=5) == "parked"
    assert pipeline._push(redis, pk, to=2, item=104, params=params, front=True) == "queued"  # no second consumer
    assert redis.hget(live.key(pk, pipeline.BUSY), "2") == b"0"
    assert pipeline._take_one(redis, pk, 3, params={**params, "stage_ms": 1, "slow_stage_ms": 1}, seed=5) == "done"
    assert redis.hget(live.key(pk, pipeline.BUSY), "2") == b"1"  # the room woke it, once
    assert redis.hget(live.key(pk, pipeline.PARKED), "2") is None
    assert redis.hget(live.key(pk, pipeline.SEQ), "2") == b"1"  # one stage-2 consumer job enqueued in all


def test_a_stopped_pipeline_counts_what_was_still_queued(lab_engine):
    experiment = start("pipeline", seed=5, jobs=12, arrival_per_s=0.0, duration_ms=1, stage_ms=1, slow_stage_ms=1)
    lab_engine.worker.work(burst=True, max_jobs=12, with_scheduler=False)  # the front only: 12 items wait
    assert live.Recorder(experiment.pk).redis.llen(live.key(experiment.pk, pipeline.QUEUE[2])) == 12
    experiments.experiment_stop(experiment)
    state = lab_engine.finish(experiment)
    assert state.counters["pl_stopped"] == 12
    assert_accounts(experiment, state)


def test_the_stages_run_in_the_visitors_fair_share_and_count_against_the_caps(lab_engine, monkeypatch):
    params = PRESETS["pipeline"].parameters()
    # the front alone would fit one run's worker-seconds; its later stages at their slowest do not
    slow = {**params, "preset": "pipeline", "jobs": 200, "slow_stage_ms": 3000, "arrival_per_s": 0}
    form = ExperimentForm(data=slow)
    assert not form.is_valid()
    assert "worker-seconds" in str(form.errors)
    assert ExperimentForm(data={**slow, "workflow": "none"}).is_valid()
    # one consumer per stage: the last item may wait for every item at each stage, inside the horizon
    assert schedule_span_s({**params, "jobs": 500, "slow_stage_ms": 5000}) > HORIZON_S
    # the open-jobs cap counts each item's job at stages 2 and 3
    monkeypatch.setattr(limits, "GLOBAL_OPEN_JOBS", 100)
    owner = Visitor(anon_id="pipe")
    with pytest.raises(experiments.LimitExceeded, match="jobs still to run"):
        experiments.experiment_start(
            owner=owner, limit_key="ip:192.0.2.7", preset="pipeline", params={**params, "jobs": 40}
        )
    plain = experiments.experiment_start(  # the same 40 messages without the stages fit
        owner=owner, limit_key="ip:192.0.2.7", preset="pipeline", params={**params, "jobs": 40, "workflow": "none"}
    )
    experiments.experiment_stop(plain)
    experiment = experiments.experiment_start(
        owner=owner, limit_key="ip:192.0.2.7", preset="pipeline",
        params={**params, "jobs": 2, "arrival_per_s": 0, "slow_stage_ms": 1, "stage_ms": 1},
    )  # fmt: skip
    stage_job = f"lab-pl{experiment.pk}-2-1"
    lab_engine.run_until(lambda: rq_storage.job_exists(rq_storage.lab_queue().connection, stage_job))
    job = Job.fetch(stage_job, connection=rq_storage.lab_queue().connection)
    assert job.rate_limit_key == fairshare.rate_key("ip:192.0.2.7")
    lab_engine.finish_all(experiment, plain)


def test_the_live_view_draws_each_queue_on_one_time_axis_and_explains_the_arithmetic(lab_engine, client):
    owner = anonymous_visitor(client)
    experiment = start("pipeline", owner=owner, seed=3, stage_bound=3, **FAULTS)
    lab_engine.finish(experiment)
    body = client.get(reverse("sandbox:detail", args=[experiment.pk])).content.decode()
    assert "The queues between the stages" in body
    assert 'id="chart-pipeline-depth-t"' in body
    assert 'id="chart-pipeline-age-t"' in body
    assert 'data-counter="max_depth_stage3"' in body
    assert 'data-counter="shed"' in body
    assert "Where the backlog builds" in body


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bound", [0, 5])
def test_on_the_real_pool_the_backlog_builds_before_the_slow_stage_and_a_bound_sheds_at_the_front(
    rq_workers, capsys, bound
):
    call_command("experiment", "run", "pipeline", "--seed", "7", "--set", f"stage_bound={bound}", "--json")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["finished"] is True
    assert summary["enqueued"] == summary["succeeded"] + summary["dead_lettered"] + summary["stopped"]
    assert summary["done_stage1"] + summary["shed"] == summary["succeeded"]
    assert summary["done_stage1"] == summary["done_stage3"] + summary["stage_dead"] + summary["pl_stopped"]
    assert summary["backlog_stage"] == 3
    if bound:  # the queue before stage 3 filled, then stage 2's behind it, then the front shed
        assert summary["max_depth_stage3"] == summary["max_depth_stage2"] == bound
        assert summary["shed"] > 0
    else:
        assert summary["max_depth_stage3"] > summary["max_depth_stage2"]
        assert summary["shed"] == 0  # the front accepted everything
        # 6 arrive a second, 2.5 leave: the queue grows well past any bound worth having
        assert summary["max_depth_stage3"] >= 10
        assert summary["max_age_ms_stage3"] > 2000
    experiment = Experiment.objects.get(pk=summary["id"])
    assert wait_finished(experiment).finished


def test_compare_shows_each_stages_peaks_and_the_shed_of_both_runs(lab_engine, client):
    owner = anonymous_visitor(client)
    unbounded = start("pipeline", owner=owner, seed=3, stage_bound=0, **{**FAULTS, "failure_rate": 0.0})
    bounded = start("pipeline", owner=owner, seed=3, stage_bound=3, **{**FAULTS, "failure_rate": 0.0})
    lab_engine.finish_all(unbounded, bounded)
    response = client.get(reverse("sandbox:compare"), {"a": unbounded.pk, "b": bounded.pk})
    assert response.status_code == 200
    rows = {row["key"]: row for row in response.context["outcomes"]}
    assert rows["shed"]["a"] == 0
    assert rows["shed"]["b"] > 0
    assert rows["max_depth_stage2"]["b"] <= 3
    assert "deepest queue before stage 3" in response.content.decode()
