import time
from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue
from rq.rate_limit import RateLimit, RateLimitRegistry

from sandbox.engine import experiments, live
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from sandbox.ops.janitor import recover_lost_promotions


def test_a_queued_job_that_fell_off_the_queue_is_pushed_back_once(redis_conn):
    queue = Queue("janitor-test", connection=redis_conn)  # no worker listens here
    lost = queue.enqueue("operator.add", 1, 2, rate_limit=RateLimit(key="janitor-test", concurrency=2))
    kept = queue.enqueue("operator.add", 3, 4, rate_limit=RateLimit(key="janitor-test", concurrency=2))
    assert queue.get_job_ids() == [lost.id, kept.id]
    redis_conn.lrem(queue.key, 1, lost.id)  # the id vanishes while its slot stays taken
    allowed = RateLimitRegistry("janitor-test", redis_conn).allowed_key
    redis_conn.zadd(allowed, {lost.id: time.time() - 60, kept.id: time.time() - 60})

    assert recover_lost_promotions(queue) == [lost.id]
    assert sorted(queue.get_job_ids()) == sorted([lost.id, kept.id])
    assert recover_lost_promotions(queue) == []


def test_a_recently_promoted_job_is_left_alone(redis_conn):
    queue = Queue("janitor-test-2", connection=redis_conn)
    job = queue.enqueue("operator.add", 1, 2, rate_limit=RateLimit(key="janitor-test-2", concurrency=1))
    redis_conn.lrem(queue.key, 1, job.id)
    assert recover_lost_promotions(queue) == []  # could be a worker between pop and start


def test_the_lock_of_a_silent_scheduler_is_released_and_a_live_ones_is_kept(redis_conn):
    from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
    from rq.utils import utcformat

    from sandbox.ops.janitor import release_dead_scheduler_lock

    queue = Queue("janitor-sched", connection=redis_conn)
    lock = RQScheduler.get_locking_key(queue.name)
    redis_conn.set(lock, "live-one", ex=60)
    redis_conn.hset(SCHEDULER_KEY_TEMPLATE % "live-one", "last_heartbeat", utcformat(datetime.now(UTC)))
    assert release_dead_scheduler_lock(queue) is False
    assert redis_conn.get(lock) == b"live-one"

    redis_conn.set(lock, "dead-one", ex=60)
    redis_conn.hset(
        SCHEDULER_KEY_TEMPLATE % "dead-one", "last_heartbeat", utcformat(datetime.now(UTC) - timedelta(seconds=30))
    )
    assert release_dead_scheduler_lock(queue) is True
    assert redis_conn.get(lock) is None


def test_a_job_of_a_dead_worker_is_recovered_only_after_two_passes(redis_conn, monkeypatch):
    from rq.job import JobStatus
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    from sandbox.ops import janitor

    monkeypatch.setattr(janitor, "CONFIRM_SECONDS", 0.2)
    queue = Queue("janitor-abandon", connection=redis_conn)
    job = queue.enqueue("operator.add", 1, 2)
    queue.remove(job)
    job.worker_name = "ghost-worker"  # no such worker hash: its heartbeat is missing
    job.set_status(JobStatus.STARTED)
    job.save()
    registry = StartedJobRegistry(queue=queue)
    redis_conn.zadd(registry.key, {f"{job.id}:exec-1": time.time() + 60})

    suspects: dict[str, float] = {}
    assert janitor.recover_abandoned(queue, suspects) == []  # first sighting: only a suspect
    time.sleep(0.3)
    assert janitor.recover_abandoned(queue, suspects) == [job.id]
    assert job.id in FailedJobRegistry(queue=queue).get_job_ids(cleanup=False)
    assert suspects == {}


@pytest.mark.django_db
def test_a_run_between_its_record_and_its_admission_is_not_finished_by_a_janitor_pass(redis_conn):
    """experiment_start writes the run's record, then shares the workers (database reads), then admits its jobs.
    A janitor pass in between saw every counter at 0 (0 admitted = 0 ended, nothing running) and marked the run
    finished: its jobs then ran on a run the database called over (no fair share, no kill button)."""
    experiment = Experiment.objects.create(
        anon_id="between", preset="happy", params=PRESETS["happy"].parameters(), seed=1
    )
    recorder = live.Recorder(experiment.pk)
    recorder.create(params=experiment.params, seed=1, requested=3)

    assert not live.looks_finished(experiment.pk)
    assert experiments.reap(redis_conn) == []
    experiment.refresh_from_db()
    assert experiment.is_running

    recorder.admitted(arrivals={1: time.time(), 2: time.time()}, rejected=1, schedule={1: [], 2: []})
    assert not live.looks_finished(experiment.pk)  # 2 admitted, none ended
    assert live.read(experiment.pk).counters["enqueued"] == 2


@pytest.mark.django_db
def test_a_workflow_tick_between_the_record_and_the_admission_does_not_call_the_requests_done(redis_conn):
    """The workflow's own reading of "every request ended" agrees with the finish check: not before admission."""
    from sandbox.workflows.run import requests_done

    experiment = Experiment.objects.create(anon_id="between-workflow", preset="outbox", params={}, seed=1)
    recorder = live.Recorder(experiment.pk)
    recorder.create(params=PRESETS["outbox"].parameters(), seed=1, requested=0)
    assert not requests_done(redis_conn, experiment.pk)
    recorder.admitted(arrivals={}, rejected=0, schedule={})
    assert requests_done(redis_conn, experiment.pk)  # admitted nothing: nothing left to end
