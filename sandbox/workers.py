"""The worker class `make run` and the tests start (through django-rq's `rqworker-pool`)."""

from datetime import UTC, datetime

from redis import Redis
from rq import Worker
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.utils import utcparse

# A busy worker heartbeats every this many seconds; the janitor uses it to spot dead workers fast.
HEARTBEAT_SECONDS = 2
# An idle worker wakes this often (worker_ttl - 15): it re-registers, and after a Redis restart its
# maintenance pass restarts the scheduler, which RQ would otherwise leave dead for up to 10 minutes.
WORKER_TTL_SECONDS = 20
MAINTENANCE_SECONDS = 5
# The scheduler heartbeats every second; a lock whose holder is silent this long belongs to a dead one.
SCHEDULER_STALE_SECONDS = 10


class LabWorker(Worker):
    def __init__(self, *args, **kwargs):
        from sandbox.jobs import on_horse_killed

        kwargs.setdefault("job_monitoring_interval", HEARTBEAT_SECONDS)
        kwargs.setdefault("worker_ttl", WORKER_TTL_SECONDS)
        kwargs.setdefault("maintenance_interval", MAINTENANCE_SECONDS)
        kwargs.setdefault("work_horse_killed_handler", on_horse_killed)
        super().__init__(*args, **kwargs)


def scheduler_heartbeat_age(connection: Redis, queue: str = "lab") -> tuple[bytes | None, float | None]:
    """(lock holder, seconds since its last heartbeat) — (None, None) when no scheduler holds the lock."""
    holder = connection.get(RQScheduler.get_locking_key(queue))
    if not holder:
        return None, None
    raw = connection.hget(SCHEDULER_KEY_TEMPLATE % holder.decode(), "last_heartbeat")
    if not raw:
        return holder, None
    return holder, (datetime.now(UTC) - utcparse(raw.decode()).replace(tzinfo=UTC)).total_seconds()


def scheduler_alive(connection: Redis, queue: str = "lab", fresh_seconds: float = SCHEDULER_STALE_SECONDS) -> bool:
    """True when a scheduler holds the queue's lock and has heartbeated recently.

    The lock alone is not enough: after a Redis restart the lock of a dead scheduler survives in the
    append-only file for up to a minute.
    """
    holder, age = scheduler_heartbeat_age(connection, queue)
    return holder is not None and age is not None and age < fresh_seconds
