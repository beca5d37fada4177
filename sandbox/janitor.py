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

from redis import Redis
from rq import Queue
from rq.registry import StartedJobRegistry
from rq.utils import utcparse
from rq.worker import Worker

from sandbox.live import beat_key
from sandbox.workers import HEARTBEAT_SECONDS

log = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 5 * HEARTBEAT_SECONDS
LOCK_SECONDS = 30


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


def recover_abandoned(queue: Queue) -> list[str]:
    """Hand every started job whose worker is dead to RQ's cleanup; return their ids."""
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
        if dead:
            connection.zadd(registry.key, dict.fromkeys(dead, 1), xx=True)
            registry.cleanup(timestamp=1)
            log.warning("janitor: recovered abandoned jobs %s", sorted(dead.values()))
        return sorted(dead.values())
    finally:
        connection.delete(queue.registry_cleaning_key)


def run_forever(queue: Queue, interval: float = HEARTBEAT_SECONDS) -> None:
    while True:
        try:
            recover_abandoned(queue)
        except Exception:
            log.exception("janitor pass failed; retrying")
        time.sleep(interval)
