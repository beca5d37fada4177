"""Recover jobs whose whole worker died, within seconds instead of RQ's 60+.

RQ only treats a started job as abandoned once its registry score (heartbeat + 60 s) expires, and
then only when some process cleans the registry. The janitor marks a started job as expired as soon
as both its worker's heartbeat and the job's own progress beat are stale, then lets RQ's own
`StartedJobRegistry.cleanup()` retry or dead-letter it. It holds the queue's maintenance lock while
doing so: two concurrent cleanups would requeue the same job twice.
"""

import logging
import time
from datetime import UTC, datetime

from django.db import close_old_connections
from redis import Redis
from rq import Queue
from rq.rate_limit import RateLimitRegistry
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.utils import utcparse
from rq.worker import Worker

from sandbox.live import Recorder, beat_key, parse_job_id
from sandbox.workers import HEARTBEAT_SECONDS, SCHEDULER_STALE_SECONDS, scheduler_heartbeat_age

log = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 5 * HEARTBEAT_SECONDS
LOST_AFTER_SECONDS = 30
CONFIRM_SECONDS = HEARTBEAT_SECONDS
LOCK_SECONDS = 30
JANITOR_BEAT_KEY = "lab:janitor:beat"
JANITOR_STALE_SECONDS = 10  # /healthz says "degraded" when no janitor pass finished for this long


def worker_is_alive(connection: Redis, worker_name: str | None, now: datetime) -> bool:
    if not worker_name:
        return False
    raw = connection.hget(Worker.redis_worker_namespace_prefix + worker_name, "last_heartbeat")
    if raw is None:
        return False
    last = utcparse(raw.decode())
    return (now - last.replace(tzinfo=UTC)).total_seconds() < STALE_AFTER_SECONDS


def job_is_beating(connection: Redis, job_id: str) -> bool:
    return bool(connection.exists(beat_key(job_id)))


def recover_abandoned(queue: Queue, suspects: dict[str, float] | None = None) -> list[str]:
    """Hand every started job whose worker is dead to RQ's cleanup; return their ids.

    With `suspects` (kept between passes), an entry must look dead on two passes at least
    CONFIRM_SECONDS apart: a false positive would run a live job twice.
    """
    connection = queue.connection
    if not connection.set(queue.registry_cleaning_key, 1, nx=True, ex=LOCK_SECONDS):
        return []
    try:
        registry = StartedJobRegistry(queue=queue)
        now = datetime.now(UTC)
        dead: dict[str, str] = {}
        for entry in connection.zrange(registry.key, 0, -1):
            entry = entry.decode()
            job_id = entry.split(":", 1)[0]
            job = queue.fetch_job(job_id)
            if job is None:
                continue
            if worker_is_alive(connection, job.worker_name, now) or job_is_beating(connection, job_id):
                continue
            dead[entry] = job_id
        if suspects is not None:
            seen = time.monotonic()
            for entry in list(suspects):
                if entry not in dead:
                    del suspects[entry]  # it came back to life or finished
            for entry in list(dead):
                first = suspects.setdefault(entry, seen)
                if seen - first < CONFIRM_SECONDS:
                    del dead[entry]
                else:
                    del suspects[entry]
        if dead:
            connection.zadd(registry.key, dict.fromkeys(dead, 1), xx=True)
            registry.cleanup(timestamp=1)
            log.warning("janitor: recovered abandoned jobs %s", sorted(dead.values()))
        return sorted(dead.values())
    finally:
        connection.delete(queue.registry_cleaning_key)


def recover_lost_promotions(queue: Queue, older_than: float = LOST_AFTER_SECONDS) -> list[str]:
    """Push back jobs that hold a rate-limit slot as 'queued' but are on no queue and not running.

    Seen once in a local run: a promoted job id vanished from the list while its slot stayed taken, so
    the experiment could never finish and its concurrency shrank by one. Cheap to check: a rate
    limit's allowed set holds at most `concurrency` ids.
    """
    connection = queue.connection
    started = StartedJobRegistry(queue=queue)
    started_ids = {entry.decode().split(":", 1)[0] for entry in connection.zrange(started.key, 0, -1)}
    cutoff = time.time() - older_than
    recovered = []
    for registry in RateLimitRegistry.all(connection):
        for raw_id, since in connection.zrange(registry.allowed_key, 0, -1, withscores=True):
            job_id = raw_id.decode()
            if since > cutoff or job_id in started_ids:
                continue
            status, origin = connection.hmget(f"rq:job:{job_id}", "status", "origin")
            if status != b"queued" or origin != queue.name.encode():
                continue
            if connection.lpos(queue.key, job_id) is not None:
                continue
            queue.push_job_id(job_id)
            recovered.append(job_id)
            ids = parse_job_id(job_id)
            if ids:
                Recorder(ids[0], connection).note(
                    "requeued_lost", ids[1], detail="queued job was on no queue: pushed back"
                )
    if recovered:
        log.warning("janitor: pushed back lost queued jobs %s", recovered)
    return recovered


# Delete the lock only if the dead scheduler still holds it (compare-and-delete).
_RELEASE_IF_HELD_BY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def release_dead_scheduler_lock(queue: Queue) -> bool:
    """Free the scheduler lock of a scheduler that stopped heartbeating, so a live worker takes over.

    RQ keeps such a lock until its 61 s TTL ends — after a Redis restart the dead scheduler's lock
    even comes back from the append-only file — and no retry fires meanwhile.
    """
    connection = queue.connection
    holder, age = scheduler_heartbeat_age(connection, queue.name)
    if holder is None or (age is not None and age < SCHEDULER_STALE_SECONDS):
        return False
    released = bool(connection.eval(_RELEASE_IF_HELD_BY, 1, RQScheduler.get_locking_key(queue.name), holder))
    if released:
        log.warning("janitor: released the lock of dead scheduler %s (silent for %s s)", holder.decode(), age)
    return released


def beat(connection: Redis) -> None:
    connection.set(JANITOR_BEAT_KEY, f"{time.time():.3f}", ex=JANITOR_STALE_SECONDS * 10)


def heartbeat_age(connection: Redis) -> float | None:
    """Seconds since some janitor last finished a pass; None if none ever did (or long ago)."""
    raw = connection.get(JANITOR_BEAT_KEY)
    return max(0.0, time.time() - float(raw)) if raw else None


def run_forever(queue: Queue, interval: float = HEARTBEAT_SECONDS) -> None:
    from sandbox import experiments, fairshare

    suspects: dict[str, float] = {}
    while True:
        try:
            recover_abandoned(queue, suspects)
            recover_lost_promotions(queue)
            release_dead_scheduler_lock(queue)
            experiments.reap(queue.connection)
            fairshare.rebalance(queue.connection)
            beat(queue.connection)
        except Exception:
            log.exception("janitor pass failed; retrying")
        finally:
            close_old_connections()
        time.sleep(interval)
