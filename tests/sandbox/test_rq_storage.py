"""Contract tests for sandbox/engine/rq_storage.py: each pins one assumption the adapter makes about how the
installed rq stores its data in Redis. rq is pinned exactly (requirements.txt); after an upgrade, a
failure here names the assumption that no longer holds and the adapter function to fix.

They run on private queues (never `lab`), with rq's in-process SimpleWorker where a job must run.
"""

import time
import uuid
from datetime import timedelta

import pytest
import rq
from rq import Queue, Retry, SimpleWorker
from rq.job import Callback, Job
from rq.rate_limit import RateLimit
from rq.scheduler import RQScheduler

from sandbox.engine import rq_storage


def noop() -> str:
    return "ok"


def boom() -> None:
    raise RuntimeError("contract test failure")


def refund_once(job, connection, exc_type, exc_value, traceback) -> None:
    """A failure callback that gives back the retry, as sandbox.ops.jobs does when Redis refused a write."""
    rq_storage.refund_retry(job, most=1)


def started_entries_seen_by_the_job() -> list:
    """Runs inside a SimpleWorker: what the adapter reads from the started registry mid-job."""
    job = rq.get_current_job()
    queue = Queue(job.origin, connection=job.connection)
    return rq_storage.started_entries(queue)


def workers_seen_by_the_job() -> list:
    return rq_storage.workers_and_jobs(rq.get_current_job().connection, time.time())


@pytest.fixture
def queue(redis_conn):
    name = f"contract-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, connection=redis_conn)
    yield queue
    queue.empty()
    for key in redis_conn.scan_iter(f"*{name}*", count=10_000):
        redis_conn.delete(key)


def work(queue: Queue) -> None:
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def test_rq_version_is_the_one_these_contracts_were_written_for():
    assert rq.__version__ == "3.0.0", (
        "rq changed: re-read sandbox/engine/rq_storage.py against it, then update this pin"
    )


def test_a_job_lives_in_a_hash_under_the_rq_job_prefix(queue):
    job = queue.enqueue(noop)
    assert rq_storage.job_key(job.id) == Job.key_for(job.id)
    assert queue.connection.type(rq_storage.job_key(job.id)) == b"hash"
    assert rq_storage.job_exists(queue.connection, job.id)


def test_a_job_hash_holds_its_status_and_origin_queue(queue):
    job = queue.enqueue(noop)
    assert rq_storage.job_status_and_origin(queue.connection, job.id) == (b"queued", queue.name.encode())


def test_a_queue_is_a_list_of_job_ids_that_lrem_and_lpos_reach(queue):
    job = queue.enqueue(noop)
    assert rq_storage.on_queue(queue, job.id)
    assert rq_storage.take_off_queue(queue, ["contract-rate"], [job.id, "not-a-job"]) == [True, False]
    assert not rq_storage.on_queue(queue, job.id)


def test_scheduled_jobs_sit_in_a_sorted_set_the_adapter_can_take_them_off(queue):
    job = queue.enqueue_in(timedelta(seconds=60), noop)
    assert not rq_storage.on_queue(queue, job.id)
    assert rq_storage.take_off_queue(queue, ["contract-rate"], [job.id]) == [True]
    assert rq_storage.delete_job(queue.connection, job.id)
    assert not rq_storage.job_exists(queue.connection, job.id)


def test_a_rate_limit_config_hash_is_rq_rl_key_with_a_concurrency_field(queue):
    key = f"contract-{uuid.uuid4().hex[:8]}"
    job = queue.enqueue(noop, rate_limit=RateLimit(key=key, concurrency=2))
    try:
        assert rq_storage.rate_limit_concurrency(queue.connection, key) == 2
        assert queue.connection.hget(rq_storage.RATE_LIMIT_PREFIX + key, "concurrency") == b"2"
        # every job keeps its own copy of the concurrency, which set_rate_limit_concurrency updates too
        assert queue.connection.hget(rq_storage.job_key(job.id), "rate_limit_concurrency") == b"2"
        prefix = job.id[:-1]
        rq_storage.set_rate_limit_concurrency(queue.connection, key, 3, [(prefix, 0)])
        assert rq_storage.rate_limit_concurrency(queue.connection, key) == 3
        # the copy is written only into jobs whose hash names this key (field rate_limit_key): a priority run's
        # jobs carry one of two keys
        numbered = queue.enqueue(noop, job_id=f"{key}-1", rate_limit=RateLimit(key=key, concurrency=3))
        assert queue.connection.hget(rq_storage.job_key(numbered.id), "rate_limit_key") == key.encode()
        rq_storage.set_rate_limit_concurrency(queue.connection, f"{key}-other", 5, [(f"{key}-", 1)])
        assert queue.connection.hget(rq_storage.job_key(numbered.id), "rate_limit_concurrency") == b"3"
        rq_storage.set_rate_limit_concurrency(queue.connection, key, 4, [(f"{key}-", 1)])
        assert queue.connection.hget(rq_storage.job_key(numbered.id), "rate_limit_concurrency") == b"4"
    finally:
        for stale in queue.connection.scan_iter(f"{rq_storage.RATE_LIMIT_PREFIX}{key}*", count=10_000):
            queue.connection.delete(stale)


def test_a_job_holding_a_rate_limit_slot_is_listed_with_when_it_took_it(queue):
    key = f"contract-{uuid.uuid4().hex[:8]}"
    job = queue.enqueue(noop, rate_limit=RateLimit(key=key, concurrency=1))
    try:
        slots = dict(rq_storage.rate_limit_slots(queue.connection))
        assert job.id in slots
        assert slots[job.id] > 0
    finally:
        for stale in queue.connection.scan_iter(f"{rq_storage.RATE_LIMIT_PREFIX}{key}*", count=10_000):
            queue.connection.delete(stale)


def test_started_registry_entries_are_job_id_colon_execution_id(queue):
    job = queue.enqueue(started_entries_seen_by_the_job)
    work(queue)
    entries = Job.fetch(job.id, connection=queue.connection).return_value()
    assert [job_id for _, job_id in entries] == [job.id]
    assert entries[0][0].startswith(f"{job.id}:")
    assert len(entries[0][0]) > len(job.id) + 1


def test_expiring_a_started_entry_lets_rq_cleanup_fail_the_job(queue):
    job = queue.enqueue(noop)
    registry = rq.registry.StartedJobRegistry(queue=queue)
    queue.connection.zadd(registry.key, {f"{job.id}:contract": 9_999_999_999})
    queue.remove(job.id)
    job.set_status(rq.job.JobStatus.STARTED)  # rq 3.0 fails only jobs still marked started
    rq_storage.expire_started(queue, [f"{job.id}:contract"])
    assert job.id in rq_storage.failed_job_ids(queue)


def test_the_registry_cleaning_lock_is_a_key_two_cleanups_cannot_both_take(queue):
    assert rq_storage.take_cleaning_lock(queue, 5)
    assert not rq_storage.take_cleaning_lock(queue, 5)
    rq_storage.release_cleaning_lock(queue)
    assert rq_storage.take_cleaning_lock(queue, 5)
    rq_storage.release_cleaning_lock(queue)


def test_a_maintenance_lock_left_by_a_worker_that_died_mid_clean_is_taken_over_after_a_minute(queue):
    """RQ's worker holds the lock for 899 s and deletes it when its clean-up ends: killed mid-clean, it would keep the
    janitor from recovering any job for 15 minutes. A fresh RQ lock is respected; one a minute old is taken over."""
    key = queue.registry_cleaning_key
    assert queue.acquire_maintenance_lock()  # as a worker's clean_registries() takes it
    assert not rq_storage.take_cleaning_lock(queue, 5)  # a worker cleaning now
    assert queue.connection.get(key) == b"1"
    queue.connection.expire(key, rq_storage.RQ_CLEANING_LOCK_SECONDS - 61)  # taken 61 s ago: nobody cleans that long
    assert rq_storage.take_cleaning_lock(queue, 5)
    assert 0 < queue.connection.ttl(key) <= 5
    queue.connection.persist(key)  # the janitor's own lock is never taken over by another janitor
    assert not rq_storage.take_cleaning_lock(queue, 5)
    rq_storage.release_cleaning_lock(queue)
    assert queue.connection.get(key) is None
    assert queue.acquire_maintenance_lock()
    rq_storage.release_cleaning_lock(queue)  # the janitor never releases a lock a worker holds
    assert queue.connection.get(key) == b"1"
    queue.release_maintenance_lock()


def test_a_failed_job_is_filed_in_the_failed_registry(queue):
    job = queue.enqueue(boom)
    work(queue)
    assert job.id in rq_storage.failed_job_ids(queue)
    assert rq_storage.failure_settled(queue, "contract-rate", job.id, wait_s=0.1)


def test_rq_requeue_leaves_retries_left_at_zero_so_redrive_restores_the_budget(queue):
    job = queue.enqueue(boom, retry=Retry(max=1))
    work(queue)
    work(queue)  # the retry
    assert job.id in rq_storage.failed_job_ids(queue)
    rq.registry.FailedJobRegistry(queue=queue).requeue(job.id)
    assert Job.fetch(job.id, connection=queue.connection).retries_left == 0  # why requeue_failed sets it
    work(queue)
    assert rq_storage.requeue_failed(queue, job.id, retries=3)
    assert Job.fetch(job.id, connection=queue.connection).retries_left == 3
    assert rq_storage.on_queue(queue, job.id)


def test_a_retry_refunded_in_the_failure_callback_is_not_spent(queue):
    """RQ runs the failure callback on the Job object its handle_job_failure then retries (decrementing
    retries_left) and saves, meta included: refund_retry's extra retry cancels the decrement, and its count of
    refunds is saved with the job, so `most` bounds them."""
    job = queue.enqueue(boom, retry=Retry(max=1, interval=[30]), on_failure=Callback(f"{__name__}.refund_once"))
    work(queue)
    job = Job.fetch(job.id, connection=queue.connection)
    assert job.retries_left == 1  # refunded: the budget is intact
    assert job.meta["redis_refusals"] == 1
    assert job.id in rq.registry.ScheduledJobRegistry(queue=queue).get_job_ids(cleanup=False)
    used_up = queue.enqueue(
        boom, retry=Retry(max=1, interval=[30]), on_failure=Callback(f"{__name__}.refund_once"),
        meta={"redis_refusals": 1},
    )  # fmt: skip
    work(queue)
    assert Job.fetch(used_up.id, connection=queue.connection).retries_left == 0  # `most` used up: spent


def test_a_filed_failure_has_left_the_started_registry_and_an_unfiled_one_has_not(queue):
    job = queue.enqueue(boom, retry=Retry(max=1, interval=[30]))
    work(queue)
    assert rq_storage.failure_filed(queue, job.id, None)
    registry = rq.registry.StartedJobRegistry(queue=queue)
    queue.connection.zadd(registry.key, {f"{job.id}:contract": 9_999_999_999})  # as while its attempt runs
    assert not rq_storage.failure_filed(queue, job.id, "contract")
    assert not rq_storage.failure_filed(queue, job.id, None)
    assert rq_storage.failure_filed(queue, job.id, "another-execution")


def test_a_refund_to_a_job_without_retries_runs_it_again_through_the_scheduler(queue):
    job = queue.enqueue(boom, on_failure=Callback(f"{__name__}.refund_once"))
    work(queue)
    assert job.id not in rq_storage.failed_job_ids(queue)
    assert job.id in rq.registry.ScheduledJobRegistry(queue=queue).get_job_ids(cleanup=False)
    assert Job.fetch(job.id, connection=queue.connection).retries_left == 0


def test_a_requeue_with_a_delay_goes_through_the_scheduled_registry(queue):
    job = queue.enqueue(boom)
    work(queue)
    assert rq_storage.requeue_failed(queue, job.id, retries=1, delay_s=30)
    assert job.id not in rq_storage.failed_job_ids(queue)
    assert job.id in rq.registry.ScheduledJobRegistry(queue=queue).get_job_ids(cleanup=False)
    assert not rq_storage.requeue_failed(queue, "no-such-job", retries=1)


def test_discarding_a_failed_job_deletes_it(queue):
    job = queue.enqueue(boom)
    work(queue)
    rq_storage.discard_failed(queue, job.id)
    assert not rq_storage.job_exists(queue.connection, job.id)
    rq_storage.discard_failed(queue, job.id)  # twice is harmless


def test_a_worker_hash_holds_state_and_last_heartbeat_and_its_jobs_are_in_an_executions_set(queue):
    job = queue.enqueue(workers_seen_by_the_job)
    work(queue)
    worker_name = Job.fetch(job.id, connection=queue.connection).worker_name
    rows = {row["name"]: row for row in Job.fetch(job.id, connection=queue.connection).return_value()}
    assert rows[worker_name]["jobs"] == [job.id]
    assert rows[worker_name]["state"] == "busy"
    assert rows[worker_name]["heartbeat_age"] is not None


def test_a_worker_heartbeat_is_read_from_its_hash(queue):
    worker = SimpleWorker([queue], connection=queue.connection, name=f"contract-{uuid.uuid4().hex[:8]}")
    worker.register_birth()
    try:
        age = rq_storage.worker_heartbeat_age(queue.connection, worker.name)
        assert age is not None
        assert age < 60
        assert rq_storage.worker_count(queue.connection) >= 1
        assert any(age < 60 for age in rq_storage.worker_heartbeat_ages(queue.connection))
    finally:
        worker.register_death()


def test_the_scheduler_lock_is_a_key_per_queue_holding_the_scheduler_name_with_a_heartbeat_hash(queue):
    scheduler = RQScheduler([queue.name], connection=queue.connection)
    assert scheduler.acquire_locks() == {queue.name}
    scheduler.heartbeat()
    try:
        holder, age = rq_storage.scheduler_heartbeat_age(queue.connection, queue.name)
        assert holder == scheduler.name.encode()
        assert age is not None
        assert age < 5
        assert not rq_storage.release_scheduler_lock(queue.connection, b"someone-else", queue.name)
        assert rq_storage.release_scheduler_lock(queue.connection, holder, queue.name)
        assert rq_storage.scheduler_heartbeat_age(queue.connection, queue.name) == (None, None)
    finally:
        scheduler.release_locks()
        queue.connection.delete(scheduler.key)
