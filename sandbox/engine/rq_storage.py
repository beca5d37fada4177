"""RQ's storage, behind one adapter: the only module that knows how rq lays out its data in Redis.

Everything here leans on rq internals that are not public API — `rq:` key names, registry sorted
sets, the scheduler lock, the worker executions set — which is why rq is pinned exactly. Each
assumption has a contract test in tests/sandbox/test_rq_storage.py named after it, so an rq upgrade
shows exactly what broke. Public API (Queue.enqueue, Retry, RateLimit, Worker) is used elsewhere as is.
"""

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

import django_rq
from redis import Redis
from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.job import Job
from rq.rate_limit import RateLimitRegistry
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.utils import utcparse

from prepsite.redis_conn import LAB_QUEUE, get_redis

log = logging.getLogger(__name__)

JOB_KEY_PREFIX = "rq:job:"  # rq keeps each job in a hash under this prefix
RATE_LIMIT_PREFIX = "rq:rl:"  # rq.rate_limit: a rate limit's config hash is this prefix + its key


def lab_queue(connection: Redis | None = None) -> Queue:
    """The lab queue as django-rq configures it, on the site's shared client (one pool per process)."""
    return django_rq.get_queue(LAB_QUEUE, connection=connection or get_redis())


def job_key(job_id: str) -> str:
    return JOB_KEY_PREFIX + job_id


def job_exists(connection: Redis, job_id: str) -> bool:
    return bool(connection.exists(Job.key_for(job_id)))


def job_status_and_origin(connection: Redis, job_id: str) -> tuple[bytes | None, bytes | None]:
    """Read straight from the job hash: fetching a whole Job would unpickle its arguments."""
    status, origin = connection.hmget(job_key(job_id), "status", "origin")
    return status, origin


def delete_job(connection: Redis, job_id: str) -> bool:
    """Delete a job and take it out of its registries; False if it no longer exists."""
    try:
        Job.fetch(job_id, connection=connection).delete()
    except NoSuchJobError:
        return False
    return True


def redeliver(job_id: str, connection: Redis) -> None:
    """Push a job's id onto the lab queue again: the broker redelivering a message after a lost ack."""
    lab_queue(connection).push_job_id(job_id)


def take_off_queue(queue: Queue, rate_keys: list[str], job_ids: list[str]) -> list[bool]:
    """Take jobs that have not started off the scheduled registry, the held-back sets of their rate limits
    and the queue's list at once; True for each job that was on any of them."""
    connection = queue.connection
    held = [RateLimitRegistry(rate_key, connection=connection).rate_limited_key for rate_key in rate_keys]
    scheduled = ScheduledJobRegistry(queue=queue)
    pipe = connection.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.zrem(scheduled.key, job_id)
        for key in held:
            pipe.zrem(key, job_id)
        pipe.lrem(queue.key, 0, job_id)
    removed = pipe.execute()
    step = len(held) + 2
    return [any(removed[n : n + step]) for n in range(0, len(removed), step)]


def failure_settled(queue: Queue, rate_key: str, job_id: str, wait_s: float = 5.0) -> bool:
    """RQ runs our failure callback (which records the dead letter) just before it files the job as
    failed, and releases the job's fair-share slot just after. A redrive or discard in that gap waits
    for both, or it would requeue a job RQ is still finishing. False only if RQ has not filed it
    after wait_s; a job that has expired counts as settled (the caller reports it as skipped)."""
    connection = queue.connection
    registry = FailedJobRegistry(queue=queue)
    slots = RateLimitRegistry(rate_key, connection=connection).allowed_key
    deadline = time.monotonic() + wait_s
    while connection.exists(Job.key_for(job_id)):
        filed = job_id in registry
        if filed and connection.zscore(slots, job_id) is None:
            return True
        if time.monotonic() > deadline:
            return filed  # filed, but its slot still held after seconds: a stale slot, not this race
        time.sleep(0.05)
    return True


def requeue_failed(queue: Queue, job_id: str, *, retries: int, delay_s: int = 0) -> bool:
    """Move a failed job back with `retries` restored (RQ's requeue keeps retries_left at 0), now or
    after delay_s through the scheduler. False if it expired or is no longer failed."""
    registry = FailedJobRegistry(queue=queue)
    try:
        job = Job.fetch(job_id, connection=queue.connection)
        job.retries_left = retries
        job.save()
        if delay_s == 0:
            registry.requeue(job_id)
        else:
            registry.remove(job)
            queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=delay_s))
    except (NoSuchJobError, InvalidJobOperation):
        return False
    return True


REFUSED_RETRY_S = 1  # the wait before re-running an attempt Redis refused, for a job that has no retry intervals


def refund_retry(job: Job, *, most: int) -> int | None:
    """Give back the retry RQ is about to spend on an attempt that failed because Redis refused a write (it was
    full), not because of the job. Returns which refund this is, or None once `most` are used up.

    RQ runs the failure callback on the very Job object its handle_job_failure then retries: job.retry()
    decrements retries_left and saves the job with the retry, so one more here cancels that decrement. The refunds
    are counted in job.meta, saved with it, so a Redis that stays full still ends the job. A job enqueued without
    retries gets a one-second wait rather than an immediate re-run into a Redis still refusing.
    """
    refunds = int(job.meta.get("redis_refusals", 0)) + 1
    if refunds > most:
        return None
    job.meta["redis_refusals"] = refunds
    job.retries_left = (job.retries_left or 0) + 1
    if not job.retry_intervals:
        job.retry_intervals = [REFUSED_RETRY_S]
    return refunds


def failure_filed(queue: Queue, job_id: str, execution_id: str | None) -> bool:
    """Whether RQ filed a failed attempt: its execution left the started registry (RQ retried, failed or stopped
    the job in one transaction). When Redis refuses that transaction RQ logs it and moves on, and the job's status
    alone cannot tell: Job.retry() sets it outside the transaction, so it may say 'scheduled' all the same."""
    started = StartedJobRegistry(queue=queue).key
    if execution_id is not None:
        return queue.connection.zscore(started, f"{job_id}:{execution_id}") is None
    return not any(entry_job == job_id for _, entry_job in started_entries(queue))


def discard_failed(queue: Queue, job_id: str) -> None:
    with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
        FailedJobRegistry(queue=queue).remove(job_id, delete_job=True)


def failed_job_ids(queue: Queue) -> list[str]:
    return FailedJobRegistry(queue=queue).get_job_ids(cleanup=False)


# ---------------------------------------------------------------- workers and the scheduler


def _age_s(raw: bytes | None, now: datetime) -> float | None:
    return (now - utcparse(raw.decode()).replace(tzinfo=UTC)).total_seconds() if raw else None


def worker_heartbeat_age(connection: Redis, worker_name: str, now: datetime | None = None) -> float | None:
    raw = connection.hget(Worker.redis_worker_namespace_prefix + worker_name, "last_heartbeat")
    return _age_s(raw, now or datetime.now(UTC))


def worker_heartbeat_ages(connection: Redis) -> list[float]:
    """Seconds since each registered worker's last heartbeat (a killed one stays registered a while)."""
    keys = list(connection.smembers(Worker.redis_workers_keys))
    pipe = connection.pipeline(transaction=False)
    for key in keys:
        pipe.hget(key, "last_heartbeat")
    now = datetime.now(UTC)
    return [_age_s(raw, now) for raw in pipe.execute() if raw] if keys else []


def worker_count(connection: Redis) -> int:
    return Worker.count(connection=connection)


def workers_and_jobs(connection: Redis, now: float) -> list[dict]:
    """Every worker's state and current job in two round trips (Worker.all() would cost three per
    worker; RQ 3.0 keeps the current job in the worker's executions set, not its hash)."""
    keys = sorted(key.decode() for key in connection.smembers(Worker.redis_workers_keys))
    pipe = connection.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, "state", "last_heartbeat")
        pipe.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(key.removeprefix(Worker.redis_worker_namespace_prefix)))
    replies = pipe.execute()
    rows = []
    for key, (state, beat), executions in zip(keys, replies[::2], replies[1::2], strict=True):
        if state is None:
            continue  # registered but its hash expired: a dead worker
        age = now - utcparse(beat.decode()).replace(tzinfo=UTC).timestamp() if beat else None
        rows.append(
            {
                "name": key.removeprefix(Worker.redis_worker_namespace_prefix),
                "state": state.decode(),
                "jobs": sorted(member.decode().rsplit(":", 1)[0] for member in executions),
                "heartbeat_age": age,
            }
        )
    return rows


def scheduler_lock_key(queue: str = LAB_QUEUE) -> str:
    return RQScheduler.get_locking_key(queue)


def scheduler_heartbeat_age(connection: Redis, queue: str = LAB_QUEUE) -> tuple[bytes | None, float | None]:
    """(lock holder, seconds since its last heartbeat) — (None, None) when no scheduler holds the lock."""
    holder = connection.get(scheduler_lock_key(queue))
    if not holder:
        return None, None
    raw = connection.hget(SCHEDULER_KEY_TEMPLATE % holder.decode(), "last_heartbeat")
    return holder, _age_s(raw, datetime.now(UTC))


# The scheduler heartbeats every second; a lock whose holder is silent this long belongs to a dead one.
SCHEDULER_STALE_SECONDS = 10


def scheduler_alive(connection: Redis, queue: str = LAB_QUEUE, fresh_seconds: float = SCHEDULER_STALE_SECONDS) -> bool:
    """True when a scheduler holds the queue's lock and has heartbeated recently.

    The lock alone is not enough: after a Redis restart the lock of a dead scheduler survives in the
    append-only file for up to a minute.
    """
    holder, age = scheduler_heartbeat_age(connection, queue)
    return holder is not None and age is not None and age < fresh_seconds


# Delete the lock only if the dead scheduler still holds it (compare-and-delete).
_RELEASE_IF_HELD_BY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def release_scheduler_lock(connection: Redis, holder: bytes, queue: str = LAB_QUEUE) -> bool:
    return bool(connection.eval(_RELEASE_IF_HELD_BY, 1, scheduler_lock_key(queue), holder))


# ---------------------------------------------------------------- the started registry (janitor)


# RQ's worker takes the maintenance lock for 899 s and deletes it when its clean-up ends, within a second. A worker
# SIGKILLed mid-clean, or cut off by a Redis restart (AOF brings the lock back), leaves it for the rest of those 15
# minutes, and the janitor would recover no abandoned job meanwhile: seen under load, a dead worker's job stayed
# "running" for the whole soak. A lock RQ took longer ago than this is abandoned, and the janitor takes it over.
RQ_CLEANING_LOCK_SECONDS = 899
CLEANING_LOCK_ABANDONED_AFTER_SECONDS = 60
JANITOR_LOCK_VALUE = "janitor"
_TAKE_CLEANING_LOCK = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end  -- another janitor's: it ends on its own
local ttl = redis.call('TTL', KEYS[1])
if ttl == -1 or (ttl >= 0 and tonumber(ARGV[3]) - ttl > tonumber(ARGV[4])) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 2
end
return 0
"""


def take_cleaning_lock(queue: Queue, seconds: int) -> bool:
    """RQ's own registry-maintenance lock: two concurrent cleanups would requeue the same job twice."""
    taken = queue.connection.eval(
        _TAKE_CLEANING_LOCK, 1, queue.registry_cleaning_key, JANITOR_LOCK_VALUE, seconds,
        RQ_CLEANING_LOCK_SECONDS, CLEANING_LOCK_ABANDONED_AFTER_SECONDS,
    )  # fmt: skip
    if taken == 2:
        log.warning("janitor: took over the maintenance lock of %s, abandoned by a worker mid-clean", queue.name)
    return bool(taken)


def release_cleaning_lock(queue: Queue) -> None:
    queue.connection.eval(_RELEASE_IF_HELD_BY, 1, queue.registry_cleaning_key, JANITOR_LOCK_VALUE)


def started_entries(queue: Queue) -> list[tuple[str, str]]:
    """(registry entry, job id) of every started job; an entry is '<job id>:<execution id>'."""
    entries = queue.connection.zrange(StartedJobRegistry(queue=queue).key, 0, -1)
    return [(entry.decode(), entry.decode().split(":", 1)[0]) for entry in entries]


def expire_started(queue: Queue, entries: list[str]) -> None:
    """Mark started entries as expired and let RQ's own cleanup retry or dead-letter their jobs."""
    registry = StartedJobRegistry(queue=queue)
    queue.connection.zadd(registry.key, dict.fromkeys(entries, 1), xx=True)
    registry.cleanup(timestamp=1)


def on_queue(queue: Queue, job_id: str) -> bool:
    return queue.connection.lpos(queue.key, job_id) is not None


def rate_limit_slots(connection: Redis) -> list[tuple[str, float]]:
    """(job id, since) of every job holding a rate-limit slot, across every rate limit."""
    return [
        (raw_id.decode(), since)
        for registry in RateLimitRegistry.all(connection)
        for raw_id, since in connection.zrange(registry.allowed_key, 0, -1, withscores=True)
    ]


# ---------------------------------------------------------------- rate limits (fair share)


def rate_limit_concurrency(connection: Redis, rate_key: str) -> int | None:
    value = connection.hget(RateLimitRegistry(rate_key, connection=connection).config_key, "concurrency")
    return int(value) if value else None


# Every job of one experiment keeps its own copy of its rate limit's concurrency: update them with it. Only the
# jobs of this rate limit: a priority run's jobs carry one of two keys (sandbox.engine.fairshare), and writing the
# visitor's share into a low-priority job's copy would undo the reservation at its next enqueue.
_SET_JOBS_CONCURRENCY = """
for job = 1, tonumber(ARGV[2]) do
  if redis.call('HGET', KEYS[1] .. job, 'rate_limit_key') == ARGV[3] then
    redis.call('HSET', KEYS[1] .. job, 'rate_limit_concurrency', ARGV[1])
  end
end
"""


def set_rate_limit_concurrency(
    connection: Redis, rate_key: str, slots: int, jobs_by_prefix: list[tuple[str, int]]
) -> None:
    """Set a rate limit's concurrency, and the copy each of its jobs keeps (ids `<prefix><1..n>`)."""
    registry = RateLimitRegistry(rate_key, connection=connection)
    connection.hset(registry.config_key, "concurrency", slots)
    for prefix, jobs in jobs_by_prefix:
        connection.eval(_SET_JOBS_CONCURRENCY, 1, job_key(prefix), slots, jobs, rate_key)


def release_held_jobs(connection: Redis, rate_key: str, slots: int) -> None:
    """Let held-back jobs onto the queue up to `slots` (a raised share takes effect at once)."""
    RateLimitRegistry(rate_key, connection=connection).acquire_and_enqueue(slots)
