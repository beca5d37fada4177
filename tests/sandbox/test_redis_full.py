"""Redis full on the Lab's RQ path (#25, finding 6): an attempt cut short by a refused write spends no retry.

Run in process (tests/sandbox/engine.py), so the window in which Redis refuses writes opens and closes at a chosen
step of one attempt: maxmemory 1 on the session's own Redis refuses every write that could grow memory."""

from sandbox.engine import live
from sandbox.engine.fault_plan import FaultPlan
from tests.sandbox.helpers import run_story, start

SEED = 13  # with failure_rate 0.5, order #1's attempts 1-3 fail and its 4th succeeds
FLAKY = dict(
    jobs=1, failure_rate=0.5, max_retries=3, backoff="fixed", backoff_base_s=1, backoff_cap_s=1, jitter="none",
    duration_ms=20, duration_spread_ms=0, seed=SEED,
)  # fmt: skip


def test_the_seed_fails_attempts_one_to_three_and_succeeds_on_the_fourth():
    plan = FaultPlan(seed=SEED, failure_rate=0.5, poison_rate=0, crash_rate=0, duplicate_rate=0, duration_ms=20,
                     duration_spread_ms=0)  # fmt: skip
    assert [plan.fails_transiently(1, n) for n in (1, 2, 3, 4)] == [True, True, True, False]


def full_during(redis, call):
    """Refuse every write while `call` runs, then make room again."""
    redis.config_set("maxmemory", 1)
    try:
        return call()
    finally:
        redis.config_set("maxmemory", 0)


def test_an_attempt_whose_first_write_redis_refused_spends_no_retry(lab_engine, monkeypatch):
    """Redis is full as attempt 2 begins, so the Lab's first write of it (the attempt counter) is refused, and has
    room again when RQ files the failure. Before the fix RQ spent a retry on it: dead-lettered after 3 attempts."""
    redis = lab_engine.queue.connection
    experiment = start("happy", **FLAKY)
    begin, begun = live.Recorder.begin_attempt, []

    def second_begins_while_full(self, **kwargs):
        begun.append(kwargs["job"])
        if len(begun) == 2:
            return full_during(redis, lambda: begin(self, **kwargs))
        return begin(self, **kwargs)

    monkeypatch.setattr(live.Recorder, "begin_attempt", second_begins_while_full)
    state = lab_engine.finish(experiment)
    story = run_story(experiment.pk)
    assert len(begun) == 5, story  # four attempts and the refused one
    assert state.counters["attempts"] == 4, story
    assert state.counters["succeeded"] == 1, story
    assert state.counters["dead_lettered"] == 0, story
    assert state.counters["failed_attempts"] == 3, story  # the refused one never began
    refused = [e for e in live.read(experiment.pk, events=50).events if e["kind"] == "redis_refused"]
    assert len(refused) == 1, story
    assert "without spending a retry" in refused[0]["detail"], story
    assert state.accounting_holds()
