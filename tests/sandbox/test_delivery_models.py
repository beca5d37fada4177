"""The same faults on three delivery models (issue #16): RQ, a stream with a consumer group and a
visibility timeout, a partitioned log. Real consumer processes (`manage.py lab_consumers`, started by
the rq_workers fixture as make run starts them) on the suite's own Redis; Redis is the oracle."""

import json
import random
import re

import pytest

from prepsite.redis_conn import get_redis
from sandbox import delivery
from sandbox.engine import live
from sandbox.engine import outcome as run_outcome
from sandbox.engine.fault_plan import FaultPlan
from sandbox.engine.presets import PRESETS
from sandbox.models import LedgerEntry
from tests.conftest import STATE, wait_for
from tests.sandbox.helpers import FAST, start, wait_finished, wait_state

pytestmark = pytest.mark.django_db(transaction=True)


def accounting(experiment, state) -> dict:
    c = state.counters
    return {
        "admitted": c["requested"] == c["enqueued"] + c["rejected"],
        "terminal": c["enqueued"] == c["succeeded"] + c["dead_lettered"] + c["stopped"],
    }


def test_a_visibility_timeout_shorter_than_the_job_delivers_each_message_twice(rq_workers):
    experiment = start("visibility-timeout")  # 4 messages of 1.5 s, visibility timeout 1 s, spaced 4 s
    state = wait_finished(experiment, 60)
    c = state.counters
    assert c["succeeded"] == 4
    assert c["duplicates_delivered"] == 4  # the predicted one per message: claimed at 1 s, acked at 1.5 s
    assert c["double_charges"] == 0  # idempotency on: the second delivery meets the key
    assert c["duplicates_suppressed"] == 4
    assert LedgerEntry.objects.filter(experiment=experiment).count() == 4
    redeliveries = [e for e in state.events if e["kind"] == "redelivered"] or live.read(
        experiment.pk, events=200
    ).events
    assert any("still works" in e.get("detail", "") for e in redeliveries if e["kind"] == "redelivered")
    assert delivery.oracle(experiment.pk, experiment.params) == {"pending": 0, "dead_letter_stream": 0}


def test_lease_extension_stops_the_duplicates_and_idempotency_off_charges_twice(rq_workers):
    extended = start("visibility-timeout", seed=8, lease_extension="on")
    unprotected = start("visibility-timeout", seed=8, idempotency="off")
    extended_state, unprotected_state = wait_finished(extended, 60), wait_finished(unprotected, 60)
    assert extended_state.counters["duplicates_delivered"] == 0
    assert extended_state.counters["succeeded"] == 4
    assert unprotected_state.counters["double_charges"] == 4
    assert LedgerEntry.objects.filter(experiment=unprotected).count() == 8


def test_order_violations_under_rq_retries_and_none_in_the_log(rq_workers):
    rq_run = start("ordering", seed=11)
    log_run = start("ordering", seed=11, model="log")
    rq_state, log_state = wait_finished(rq_run, 120), wait_finished(log_run, 120)
    assert rq_state.counters["retries"] > 0
    assert log_state.counters["retries"] > 0
    assert rq_state.counters["order_violations"] > 0
    assert log_state.counters["order_violations"] == 0
    assert log_state.counters["succeeded"] + log_state.counters["dead_lettered"] == 40


def _poison_partition_seed() -> tuple[int, int]:
    """A seed for head-of-line whose poison message is early (so messages queue up behind it)."""
    params = PRESETS["head-of-line"].parameters()
    for seed in range(1, 500):
        plan = FaultPlan.from_params(seed, params)
        poison = [job for job in range(1, params["jobs"] + 1) if plan.is_poison(job)]
        if len(poison) == 1 and poison[0] <= 10:
            return seed, poison[0]
    raise AssertionError("no seed with exactly one early poison message")


def test_a_poison_message_blocks_its_partition_until_it_is_parked(rq_workers):
    seed, poison = _poison_partition_seed()
    blocked = start("head-of-line", seed=seed)
    parked = start("head-of-line", seed=seed, on_failure="retry_topic")
    stalled = delivery.partition_of(poison, blocked.params)
    blocked_state, parked_state = wait_finished(blocked, 120), wait_finished(parked, 120)
    for state in (blocked_state, parked_state):
        assert state.counters["dead_lettered"] == 1
        assert state.counters["succeeded"] == 39
    lag_blocked = {row["partition"]: row["max_lag"] for row in delivery.assignment(blocked.pk, blocked.params)}
    lag_parked = {row["partition"]: row["max_lag"] for row in delivery.assignment(parked.pk, parked.params)}
    others = [lag for partition, lag in lag_blocked.items() if partition != stalled]
    # Blocked: everything behind the poison message waits ~15 s of retries; the other partitions keep up.
    assert lag_blocked[stalled] >= 5
    assert lag_blocked[stalled] > 2 * max(others)
    assert lag_parked[stalled] < lag_blocked[stalled] / 2
    # Blocked, the messages queued behind the poison one waited out its retries (its own latency is the
    # same either way: it is retried until the DLQ); parked, they did not wait.
    blocked_p95, parked_p95 = run_outcome.outcome(blocked)["p95_ms"], run_outcome.outcome(parked)["p95_ms"]
    assert blocked_p95 > 5_000  # at least the poison message's backoffs: a slower machine only adds to it
    assert parked_p95 < blocked_p95 / 2
    for run in (blocked, parked):
        assert delivery.oracle(run.pk, run.params) == {"pending": 0, "dead_letter_stream": 1}


def test_a_killed_log_consumer_loses_its_partitions_which_move_and_drain(rq_workers):
    experiment = start("rebalance", seed=5)
    killed = wait_state(
        experiment, lambda s: any(e["kind"] == "consumer_killed" for e in live.read(experiment.pk, events=400).events),
        timeout=30, message="a consumer to be killed",
    )  # fmt: skip
    assert killed.exists
    state = wait_finished(experiment, 120)
    events = live.read(experiment.pk, events=500).events
    moved = [e for e in events if e["kind"] == "rebalanced"]
    assert moved, "no partition moved after its owner died"
    c = state.counters
    assert c["succeeded"] == 100
    assert c["double_charges"] == 0
    assert c["crashes"] >= 1  # the killed consumer's message was redelivered and accounted as a crash
    assert max(row["max_lag"] for row in delivery.assignment(experiment.pk, experiment.params)) >= 3
    assert delivery.oracle(experiment.pk, experiment.params)["pending"] == 0
    # The pool restarted it: three consumers again.
    wait_for(lambda: len(delivery.members(get_redis())) >= 3, 20, message="the killed consumer to be restarted")


@pytest.mark.parametrize("model", ["rq", "stream", "log"])
def test_the_accounting_invariant_holds_under_random_mixed_faults(rq_workers, model):
    rng = random.Random(f"mixed-{model}")
    faults = {
        "failure_rate": rng.choice([0.2, 0.3]),
        "poison_rate": 0.1,
        "crash_rate": 0.05,
        "duplicate_rate": 0.2,
        "max_retries": 2,
        "backoff": "fixed",
        "backoff_base_s": 1,
        "backoff_cap_s": 1,
        "jobs": 30,
        "arrival_per_s": 30.0,
        "duration_ms": 60,
        "duration_spread_ms": 30,
        "visibility_timeout_s": 1.0,
    }
    experiment = start("happy", seed=rng.randrange(1000), model=model, **faults)
    state = wait_finished(experiment, 120)  # (times SLOW: inside the 300 s test timeout)
    assert accounting(experiment, state) == {"admitted": True, "terminal": True}
    c = state.counters
    assert c["double_charges"] == 0
    assert LedgerEntry.objects.filter(experiment=experiment).count() == c["succeeded"]
    if model == "rq":
        from rq.registry import FailedJobRegistry

        from sandbox.engine.rq_storage import lab_queue

        def filed() -> set[int]:
            failed = FailedJobRegistry(queue=lab_queue()).get_job_ids(cleanup=False)
            return {int(job_id.rsplit("-", 1)[1]) for job_id in failed if job_id.startswith(f"lab-{experiment.pk}-")}

        # RQ files a job as failed just after our failure callback has recorded the dead letter.
        wait_for(lambda: filed() >= set(state.dlq), 10, message="RQ to file every dead letter as failed")
        ours = filed()
        assert len(state.dlq) == c["dead_lettered"]
        # A job id in RQ's registry but not in the DLQ is a duplicate delivery that failed after its
        # first delivery had already charged: the message itself succeeded.
        terms = get_redis().hgetall(live.key(experiment.pk, "term"))
        assert all(terms[str(job).encode()] == b"succeeded" for job in ours - set(state.dlq))
    else:
        assert delivery.oracle(experiment.pk, experiment.params) == {
            "pending": 0,
            "dead_letter_stream": c["dead_lettered"],
        }
    summary = run_outcome.outcome(experiment)
    assert {"redeliveries", "order_violations", "max_lag"} <= set(summary)
    assert json.dumps(summary)


def test_a_stream_run_is_refused_with_a_reason_when_no_consumer_is_running(db, monkeypatch):
    from sandbox.engine import experiments
    from sandbox.models import Experiment

    monkeypatch.setattr(delivery, "members", lambda redis, now=None: [])
    before = Experiment.objects.count()
    with pytest.raises(experiments.StartFailed, match="No stream/log consumer is running"):
        start("visibility-timeout")
    assert Experiment.objects.count() == before


def pool_log() -> str:
    return (STATE["workdir"] / "workers.log").read_text(errors="replace")


def test_a_kill_for_one_run_neither_fails_another_runs_message_nor_stalls_its_partitions(rq_workers):
    """Consumers are shared, but each run stands for its own consumer group: a visitor who kills a
    consumer busy with someone else's message lets that message finish, and the partitions it held for
    other runs are handed back at once instead of waiting out the 3 s lease."""
    from sandbox.engine import experiments

    redis = get_redis()
    wait_for(lambda: len(delivery.members(redis)) >= 3, 30, message="three consumers")
    theirs = start("rebalance", seed=3, jobs=12, arrival_per_s=20, duration_ms=1500, duration_spread_ms=0,
                   kill_consumer_at_s=0)  # fmt: skip
    mine = start("rebalance", seed=4, jobs=6, arrival_per_s=0.5, kill_consumer_at_s=0, **FAST)

    def busy_with_theirs() -> str | None:
        return next((c["name"] for c in delivery.consumers(redis) if c.get("run") == theirs.pk), None)

    victim = wait_for(busy_with_theirs, 20, interval=0.02, message="a consumer working on the other run")
    experiments.experiment_kill_consumer(mine, victim)
    wait_for(lambda: victim not in delivery.members(redis), 10, interval=0.02, message=f"{victim} to die")

    def victim_holds_none_of_theirs() -> bool:
        return all(row["owner"] != victim for row in delivery.assignment(theirs.pk, theirs.params, redis))

    wait_for(victim_holds_none_of_theirs, 3, interval=0.02, message="the other run's leases to be handed back")
    # Handed back by the pool the moment it saw the death, not run out: the pool says so in its log.
    handed_back = wait_for(
        lambda: re.search(rf"lab consumers: {victim} killed; (\d+) leases? of other runs handed back", pool_log()),
        10, message="the pool's line about the dead consumer",
    )  # fmt: skip
    assert int(handed_back[1]) >= 1

    state = wait_finished(theirs, 120)
    assert state.counters["succeeded"] == 12
    assert state.counters["crashes"] == 0  # the victim finished their message before it died
    events = live.read(theirs.pk, events=500).events
    assert not [e for e in events if "died mid-message" in e.get("detail", "")]
    assert any(e["kind"] == "consumer_kill_requested" for e in live.read(mine.pk, events=200).events)
    wait_finished(mine, 60)
    wait_for(lambda: len(delivery.members(redis)) >= 3, 20, message="the killed consumer to be restarted")


@pytest.mark.parametrize(
    ("info", "runs"),
    [
        ({"run": 3, "killed_for": [3, 5]}, {3, 5}),  # two runs' visitors asked; it died in run 3's message
        ({"run": 7}, {7}),  # crashed mid-message of run 7
        ({"run": None}, set()),  # idle and not asked: nobody waits
        (None, set()),
    ],
)
def test_a_dead_consumer_died_for_the_runs_that_asked_or_the_run_of_its_message(info, runs):
    from sandbox.management.commands.lab_consumers import died_for

    assert died_for(json.dumps(info).encode() if info is not None else None) == runs
    assert died_for(b"not json") == set()


def test_a_dead_consumers_leases_go_back_at_once_except_for_the_runs_it_died_for(redis_conn):
    runs = (990001, 990002, 990003)
    keys = [live.key(run, name) for run in runs for name in ("params", "lease:0", "lease:1", "lease:retry")]
    try:
        for run in runs:
            redis_conn.hset(delivery.ACTIVE, str(run), "log")
            redis_conn.set(live.key(run, "params"), json.dumps({"params": {"model": "log", "partitions": 2}}))
            redis_conn.set(live.key(run, "lease:0"), "c1-100", px=3000)
            redis_conn.set(live.key(run, "lease:1"), "c2-200", px=3000)  # another consumer's: never touched
        assert delivery.release_leases(redis_conn, "c1-100", keep={runs[0]}) == 2
        assert redis_conn.get(live.key(runs[0], "lease:0")) == b"c1-100"  # the run it died for waits it out
        assert redis_conn.get(live.key(runs[1], "lease:0")) is None
        assert redis_conn.get(live.key(runs[2], "lease:0")) is None
        assert all(redis_conn.get(live.key(run, "lease:1")) == b"c2-200" for run in runs)
    finally:
        redis_conn.hdel(delivery.ACTIVE, *map(str, runs))
        redis_conn.delete(*keys)
