"""The priority family (sandbox.workflows.priority): urgent jobs at the front of the queue still wait behind long
low-priority jobs holding every slot; a reserved pool is a second RQ rate-limit key for the low-priority jobs
that every fair-share rebalance keeps, inside the visitor's share. Latency needs real time and real workers, so
the lesson's comparison runs on the pool; the keys, the rebalance and the accounting run in process."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse
from rq.job import Job

from prepsite.visitor import Visitor
from sandbox.engine import experiments, fairshare, live, rq_storage
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from sandbox.params import ExperimentForm
from sandbox.workflows import priority
from tests.conftest import wait_for
from tests.sandbox.helpers import anonymous_visitor

LIMIT_KEY = "ip:192.0.2.44"


def start(preset: str, seed: int = 7, **overrides) -> Experiment:
    params = {**PRESETS[preset].parameters(), **overrides}
    return experiments.experiment_start(
        owner=Visitor(anon_id="prio"), limit_key=LIMIT_KEY, preset=preset, params=params, seed=seed
    )


def job_fields(experiment: Experiment, job: int) -> tuple[str, int, bool]:
    job_hash = Job.fetch(live.job_id_for(experiment.pk, job), connection=rq_storage.lab_queue().connection)
    return job_hash.rate_limit_key, job_hash.rate_limit_concurrency, bool(job_hash.enqueue_at_front)


def test_the_split_adds_up_to_the_share_and_reserves_what_it_can():
    assert fairshare.split(2, 0) == (0, 2)
    assert fairshare.split(2, 1) == (1, 1)
    assert fairshare.split(3, 1) == (2, 1)
    assert fairshare.split(4, 2) == (2, 2)
    assert fairshare.split(1, 1) == (1, 1)  # RQ needs a slot a key: a share of one cannot reserve
    for slots in range(2, 9):
        for reserved in range(1, slots):
            low, urgent = fairshare.split(slots, reserved)
            assert low + urgent == slots
            assert urgent >= reserved


def test_urgent_jobs_go_to_the_front_and_only_low_ones_take_the_second_key(lab_engine):
    inversion = start("priority-inversion", arrival_per_s=0.0, duration_ms=5, urgent_ms=1)
    for job in (1, 2, 3):
        key, _, at_front = job_fields(inversion, job)
        assert key == fairshare.rate_key(LIMIT_KEY)  # no reservation: one key for all
        assert at_front == (job == 3)
    lab_engine.finish(inversion)
    reserved = start("priority-reserved", arrival_per_s=0.0, duration_ms=5, urgent_ms=1)
    assert job_fields(reserved, 1)[0] == fairshare.low_rate_key(LIMIT_KEY)
    assert job_fields(reserved, 3)[0] == fairshare.rate_key(LIMIT_KEY)
    lab_engine.finish(reserved)


def test_every_rebalance_keeps_the_reservation_inside_the_visitors_share(lab_engine, monkeypatch):
    """The rebalance rewrites each job's copy of its key's concurrency; a low-priority job given the visitor's
    share would take it back to RQ at its next enqueue and undo the reservation."""
    monkeypatch.setattr(fairshare, "live_workers", lambda connection: 4)
    experiment = start("priority-reserved", arrival_per_s=0.0, concurrency=3, duration_ms=5, urgent_ms=1)
    redis = rq_storage.lab_queue().connection
    visitor, low = fairshare.rate_key(LIMIT_KEY), fairshare.low_rate_key(LIMIT_KEY)
    for workers, (low_slots, urgent_slots) in ((4, (2, 1)), (2, (1, 1)), (4, (2, 1))):
        monkeypatch.setattr(fairshare, "live_workers", lambda connection, n=workers: n)
        experiments.rebalance(redis)
        assert rq_storage.rate_limit_concurrency(redis, low) == low_slots
        assert rq_storage.rate_limit_concurrency(redis, visitor) == urgent_slots
        assert low_slots + urgent_slots == min(3, workers - 1 if workers >= 3 else workers)
        for job in range(1, 19):
            key, concurrency, _ = job_fields(experiment, job)
            assert concurrency == (urgent_slots if key == visitor else low_slots), (job, key)
    lab_engine.finish(experiment)


@pytest.mark.parametrize(
    ("preset", "seed"), [("priority-inversion", 3), ("priority-reserved", 3), ("priority-reserved", 19)]
)
def test_every_job_ends_once_under_random_faults(lab_engine, preset, seed):
    experiment = start(
        preset, seed=seed, duration_ms=20, urgent_ms=5, failure_rate=0.3, poison_rate=0.1, duplicate_rate=0.3,
        max_retries=2, backoff_base_s=1, backoff_cap_s=2,
    )  # fmt: skip
    state = lab_engine.finish(experiment)
    c = state.counters
    assert c["enqueued"] == c["succeeded"] + c["dead_lettered"] + c["stopped"]
    assert c["retries"] > 0
    assert c["duplicates_delivered"] > 0
    assert c["urgent_done"] + c["low_done"] == c["succeeded"]
    urgent = sum(1 for job in range(1, 19) if priority.is_urgent(experiment.params, job))
    assert c["urgent_done"] <= urgent
    wait_for(lambda: Experiment.objects.filter(pk=experiment.pk, status="finished").exists(), 15, message="row")
    experiment.refresh_from_db()
    for name in ("enqueued", "succeeded", "dead_lettered", "stopped", "urgent_p95_ms", "low_throughput"):
        assert name in experiment.summary, name


def test_stopping_takes_held_low_priority_jobs_off_their_own_key(lab_engine):
    experiment = start("priority-reserved", arrival_per_s=0.0, duration_ms=5, urgent_ms=1)
    redis = rq_storage.lab_queue().connection
    held = redis.zcard(f"rq:rl:{fairshare.low_rate_key(LIMIT_KEY)}:rate_limited")
    assert held > 0  # 12 low-priority jobs, 1 slot: the rest wait on the second key
    experiments.experiment_stop(experiment)
    assert redis.zcard(f"rq:rl:{fairshare.low_rate_key(LIMIT_KEY)}:rate_limited") == 0
    state = lab_engine.finish(experiment)
    assert state.counters["stopped"] >= held


def test_the_live_view_shows_urgent_latency_beside_low_throughput(lab_engine, client):
    owner = anonymous_visitor(client)
    experiment = experiments.experiment_start(
        owner=owner, preset="priority-reserved", params={**PRESETS["priority-reserved"].parameters(),
        "duration_ms": 20, "urgent_ms": 5}, seed=7,
    )  # fmt: skip
    lab_engine.finish(experiment)
    body = client.get(reverse("sandbox:detail", args=[experiment.pk])).content.decode()
    assert "Urgent and low-priority jobs side by side" in body
    assert 'data-counter="urgent_p95_ms"' in body
    assert 'data-counter="low_throughput"' in body
    assert "Low-priority throughput" in body


def test_a_reservation_must_leave_the_low_priority_jobs_a_slot():
    data = {**PRESETS["priority-reserved"].parameters(), "preset": "priority-reserved", "reserved": 2}
    form = ExperimentForm(data=data)
    assert not form.is_valid()
    assert "reserved" in form.errors


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_on_the_real_pool_a_reserved_slot_keeps_urgent_p95_low_at_the_cost_of_low_throughput(rq_workers, capsys):
    summaries = {}
    for preset in ("priority-inversion", "priority-reserved"):
        call_command("experiment", "run", preset, "--seed", "7", "--json")
        summaries[preset] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for summary in summaries.values():
        assert summary["finished"] is True
        assert summary["enqueued"] == summary["succeeded"] + summary["dead_lettered"] + summary["stopped"]
        assert summary["urgent_done"] == 6
        assert summary["low_done"] == 12
    inversion, reserved = summaries["priority-inversion"], summaries["priority-reserved"]
    print(json.dumps({name: {k: s[k] for k in ("urgent_p95_ms", "urgent_max_ms", "low_p95_ms", "low_throughput")}
                      for name, s in summaries.items()}))  # fmt: skip
    # urgent jobs wait for long ones without a reservation (up to a second each), hardly at all with one
    assert inversion["urgent_p95_ms"] > 1000
    assert reserved["urgent_p95_ms"] * 3 < inversion["urgent_p95_ms"]
    # and the low-priority jobs pay for it: one slot instead of two
    assert reserved["low_throughput"] < inversion["low_throughput"]


def test_compare_shows_urgent_latency_and_low_throughput_of_both_runs_side_by_side(lab_engine, client):
    owner = anonymous_visitor(client)
    runs = [
        experiments.experiment_start(
            owner=owner, preset=name, params={**PRESETS[name].parameters(), "duration_ms": 20, "urgent_ms": 5}, seed=7
        )
        for name in ("priority-inversion", "priority-reserved")
    ]
    lab_engine.finish_all(*runs)
    response = client.get(reverse("sandbox:compare"), {"a": runs[0].pk, "b": runs[1].pk})
    assert response.status_code == 200
    rows = {row["key"]: row for row in response.context["outcomes"]}
    for key in ("urgent_p95_ms", "urgent_done", "low_throughput", "low_p95_ms"):
        assert key in rows, key
    assert rows["urgent_done"]["a"] == rows["urgent_done"]["b"] == 6
    assert "low-priority jobs a minute" in response.content.decode()


def test_a_redriven_low_priority_job_goes_back_under_the_reserved_pools_key(lab_engine):
    experiment = start("priority-reserved", arrival_per_s=0.0, duration_ms=5, urgent_ms=1, poison_rate=1.0)
    state = lab_engine.finish(experiment)
    assert state.counters["dead_lettered"] == 18
    experiments.experiment_fix_consumer(experiment)
    assert experiments.experiment_redrive(experiment) == 18
    state = lab_engine.finish(experiment)
    assert state.counters["succeeded"] == 18
    assert job_fields(experiment, 1)[0] == fairshare.low_rate_key(LIMIT_KEY)
    assert job_fields(experiment, 3)[0] == fairshare.rate_key(LIMIT_KEY)
