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

from sandbox.engine import experiments, keys, rq_storage
from sandbox.engine.live import Recorder, beat_key, parse_job_id
from sandbox.engine.rq_storage import SCHEDULER_STALE_SECONDS
from sandbox.ops.workers import HEARTBEAT_SECONDS

log = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 5 * HEARTBEAT_SECONDS
LOST_AFTER_SECONDS = 30
CONFIRM_SECONDS = HEARTBEAT_SECONDS
LOCK_SECONDS = 30
JANITOR_BEAT_KEY = keys.JANITOR_BEAT
JANITOR_STALE_SECONDS = 10  # /healthz says "degraded" when no janitor pass finished for this long


def worker_is_alive(connection: Redis, worker_name: str | None, now: datetime) -> bool:
    if not worker_name:
        return False
    age = rq_storage.worker_heartbeat_age(connection, worker_name, now)
    return age is not None and age < STALE_AFTER_SECONDS


def job_is_beating(connection: Redis, job_id: str) -> bool:
    return bool(connection.exists(beat_key(job_id)))


def recover_abandoned(queue: Queue, suspects: dict[str, float] | None = None) -> list[str]:
    """Hand every started job whose worker is dead to RQ's cleanup; return their ids.

    With `suspects` (kept between passes), an entry must look dead on two passes at least
    CONFIRM_SECONDS apart: a false positive would run a live job twice.
    """
    connection = queue.connection
    if not rq_storage.take_cleaning_lock(queue, LOCK_SECONDS):
        return []
    try:
        now = datetime.now(UTC)
        dead: dict[str, str] = {}
        for entry, job_id in rq_storage.started_entries(queue):
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
            rq_storage.expire_started(queue, list(dead))
            log.warning("janitor: recovered abandoned jobs %s", sorted(dead.values()))
        return sorted(dead.values())
    finally:
        rq_storage.release_cleaning_lock(queue)


def recover_lost_promotions(queue: Queue, older_than: float = LOST_AFTER_SECONDS) -> list[str]:
    """Push back jobs that hold a rate-limit slot as 'queued' but are on no queue and not running.

    Seen once in a local run: a promoted job id vanished from the list while its slot stayed taken, so
    the experiment could never finish and its concurrency shrank by one. Cheap to check: a rate
    limit's allowed set holds at most `concurrency` ids.
    """
    connection = queue.connection
    started_ids = {job_id for _, job_id in rq_storage.started_entries(queue)}
    cutoff = time.time() - older_than
    recovered = []
    for job_id, since in rq_storage.rate_limit_slots(connection):
        if since > cutoff or job_id in started_ids:
            continue
        status, origin = rq_storage.job_status_and_origin(connection, job_id)
        if status != b"queued" or origin != queue.name.encode():
            continue
        if rq_storage.on_queue(queue, job_id):
            continue
        queue.push_job_id(job_id)
        recovered.append(job_id)
        ids = parse_job_id(job_id)
        if ids:
            Recorder(ids[0], connection).note("requeued_lost", ids[1], detail="queued job was on no queue: pushed back")
    if recovered:
        log.warning("janitor: pushed back lost queued jobs %s", recovered)
    return recovered


def release_dead_scheduler_lock(queue: Queue) -> bool:
    """Free the scheduler lock of a scheduler that stopped heartbeating, so a live worker takes over.

    RQ keeps such a lock until its 61 s TTL ends — after a Redis restart the dead scheduler's lock
    even comes back from the append-only file — and no retry fires meanwhile.
    """
    connection = queue.connection
    holder, age = rq_storage.scheduler_heartbeat_age(connection, queue.name)
    if holder is None or (age is not None and age < SCHEDULER_STALE_SECONDS):
        return False
    released = rq_storage.release_scheduler_lock(connection, holder, queue.name)
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
    suspects: dict[str, float] = {}
    while True:
        try:
            recover_abandoned(queue, suspects)
            recover_lost_promotions(queue)
            release_dead_scheduler_lock(queue)
            experiments.reap(queue.connection)
            experiments.rebalance(queue.connection)  # workers and consumers alike
            beat(queue.connection)
        except Exception:
            log.exception("janitor pass failed; retrying")
        finally:
            close_old_connections()
        time.sleep(interval)
