"""Redis full on the Lab's RQ path (#25, finding 6): an attempt cut short by a refused write spends no retry.

Run in process (tests/sandbox/engine.py), so the window in which Redis refuses writes opens and closes at a chosen
step of one attempt: maxmemory 1 on the session's own Redis refuses every write that could grow memory."""

import time

import pytest
from rq.job import Job

from sandbox.engine import handler, live
from sandbox.engine.fault_plan import FaultPlan
from sandbox.liveview import readmodel
from sandbox.ops import jobs
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
    rows = [row for row in readmodel.events(live.read(experiment.pk, events=50)) if row["kind"] == "redis_refused"]
    assert len(rows) == 1, story  # the live view's event log says why the attempt ran again
    assert rows[0]["label"] == "Redis full: run again", story
    assert rows[0]["pill"] == "warn", story
    assert "without spending a retry" in dict(rows[0]["details"])["detail"], story
    assert state.accounting_holds()


def test_an_attempt_whose_rq_bookkeeping_redis_refused_spends_no_retry(lab_engine, monkeypatch):
    """Redis refuses RQ's own first write of attempt 2 (marking the job started), so the job's body never runs."""
    redis = lab_engine.queue.connection
    experiment = start("happy", **FLAKY)
    worker, prepared = lab_engine.worker, []
    prepare = worker.prepare_job_execution

    def second_prepared_while_full(job, *args, **kwargs):
        prepared.append(job.id)
        if len(prepared) == 2:
            return full_during(redis, lambda: prepare(job, *args, **kwargs))
        return prepare(job, *args, **kwargs)

    monkeypatch.setattr(worker, "prepare_job_execution", second_prepared_while_full)
    state = lab_engine.finish(experiment)
    story = run_story(experiment.pk)
    assert len(prepared) == 5, story
    assert state.counters["attempts"] == 4, story
    assert state.counters["succeeded"] == 1, story
    assert state.counters["failed_attempts"] == 3, story
    assert [e["kind"] for e in live.read(experiment.pk, events=50).events].count("redis_refused") == 1, story


def test_an_attempt_redis_cut_short_while_working_ends_failed_and_spends_no_retry(lab_engine, monkeypatch):
    """Redis refuses a write in the middle of attempt 2 (the job's check for a stop request): the attempt had
    begun, so it counts as a failed attempt, but RQ runs the job again without spending a retry."""
    redis = lab_engine.queue.connection
    experiment = start("happy", **FLAKY)
    work, worked = handler._work, []

    def second_works_while_full(*args, **kwargs):
        worked.append(1)
        if len(worked) == 2:
            return full_during(redis, lambda: work(*args, **kwargs))
        return work(*args, **kwargs)

    monkeypatch.setattr(handler, "_work", second_works_while_full)
    state = lab_engine.finish(experiment)
    story = run_story(experiment.pk)
    assert state.counters["attempts"] == 4, story  # 1 fails, 2 is cut short, 3 fails, 4 succeeds
    assert state.counters["succeeded"] == 1, story
    assert state.counters["failed_attempts"] == 3, story
    assert state.running == {}, story
    rq_job = Job.fetch(live.job_id_for(experiment.pk, 1), connection=redis)
    assert rq_job.retries_left == 1, story  # attempts 1 and 3 spent a retry each; the cut-short one did not
    assert state.accounting_holds()


def test_a_redis_that_keeps_refusing_dead_letters_the_job_loudly_after_the_refunds(lab_engine, monkeypatch):
    """Every attempt's first write is refused: after REDIS_REFUSALS_REFUNDED re-runs the refusals spend the retry
    budget, and the job is dead-lettered with the reason in its events, not retried for ever."""
    redis = lab_engine.queue.connection
    experiment = start("happy", **FLAKY)
    begin, begun = live.Recorder.begin_attempt, []

    def every_begin_while_full(self, **kwargs):
        begun.append(1)
        return full_during(redis, lambda: begin(self, **kwargs))

    monkeypatch.setattr(live.Recorder, "begin_attempt", every_begin_while_full)
    state = lab_engine.finish(experiment)
    story = run_story(experiment.pk)
    assert len(begun) == jobs.REDIS_REFUSALS_REFUNDED + 4, story  # the refunded re-runs, then the whole budget
    assert state.counters["attempts"] == 0, story
    assert state.counters["dead_lettered"] == 1, story
    events = live.read(experiment.pk, events=100).events
    assert any("spends the retry budget" in e.get("detail", "") for e in events), story
    assert next(e for e in events if e["kind"] == "dead_lettered")["error"].startswith("OutOfMemoryError"), story


def test_a_failure_rq_could_not_file_while_redis_was_full_is_filed_once_it_has_room(lab_engine, monkeypatch):
    """Redis refuses everything from attempt 2's first write until after RQ first tried to file its failure
    (RQ logs that and moves on, leaving the job 'started' until its abandoned-job cleanup spends a retry on it).
    The worker files it again once Redis has room, with the retry refunded."""
    redis = lab_engine.queue.connection
    experiment = start("happy", **FLAKY)
    begin, begun = live.Recorder.begin_attempt, []

    def second_begins_while_full(self, **kwargs):
        begun.append(1)
        if len(begun) == 2:
            redis.config_set("maxmemory", 1)  # until the worker waits for room
        return begin(self, **kwargs)

    waited = []

    def room_again(seconds: float) -> None:
        waited.append(seconds)
        redis.config_set("maxmemory", 0)

    monkeypatch.setattr(live.Recorder, "begin_attempt", second_begins_while_full)
    monkeypatch.setattr(lab_engine.worker, "wait_for_room", room_again)
    try:
        state = lab_engine.finish(experiment)
    finally:
        redis.config_set("maxmemory", 0)
    story = run_story(experiment.pk)
    assert len(waited) == 1, story
    assert state.counters["attempts"] == 4, story
    assert state.counters["succeeded"] == 1, story
    assert state.counters["dead_lettered"] == 0, story


@pytest.mark.django_db(transaction=True)  # the forked work-horse charges the order on its own connection
def test_a_forking_lab_worker_spends_no_retry_on_an_attempt_redis_refused(lab_engine, monkeypatch, tmp_path, caplog):
    """The production worker class, forking a work-horse per attempt; Redis refuses everything from attempt 2's
    first write until the horse waits for room to file its failure. Without RidesOutRedisFull the refused
    heartbeat made the horse exit 1, and its parent filed a crash, spending a retry the Lab never counted; and the
    parent's own refused heartbeat, while its horse waited for room, took the worker down."""
    from django.db import connections

    from sandbox.ops import workers

    monkeypatch.setattr(workers, "die_with_parent", lambda: None)  # not the test process's business
    monkeypatch.setattr(workers, "warm_up", lambda: None)
    redis = lab_engine.queue.connection
    lab_engine.worker = workers.LabWorker([lab_engine.queue], connection=redis)
    experiment = start("happy", **FLAKY)
    connections.close_all()  # a forked horse must not share the test's database connection
    begin, refused, waited = live.Recorder.begin_attempt, tmp_path / "refused", tmp_path / "waited"

    def second_begins_while_full(self, **kwargs):  # runs in a horse: the markers are files, not memory
        if not refused.exists() and int(self.redis.hget(self.k("attempt_no"), "1") or 0) == 1:
            refused.touch()
            redis.config_set("maxmemory", 1)
        return begin(self, **kwargs)

    def room_again(worker, seconds: float) -> None:
        waited.touch()
        time.sleep(workers.HEARTBEAT_SECONDS * 1.5)  # still full as the parent heartbeats while its horse waits
        redis.config_set("maxmemory", 0)

    monkeypatch.setattr(live.Recorder, "begin_attempt", second_begins_while_full)
    monkeypatch.setattr(workers.LabWorker, "wait_for_room", room_again)
    try:
        state = lab_engine.finish(experiment)
    finally:
        redis.config_set("maxmemory", 0)
    story = run_story(experiment.pk)
    assert refused.exists(), story
    assert waited.exists(), story
    assert state.counters["attempts"] == 4, story
    assert state.counters["crashes"] == 0, story
    assert state.counters["succeeded"] == 1, story
    assert state.counters["dead_lettered"] == 0, story
    assert not [r for r in caplog.records if "unhandled exception" in r.getMessage()], story  # the worker lived
    assert any("heartbeat while it runs was skipped" in r.getMessage() for r in caplog.records), story
