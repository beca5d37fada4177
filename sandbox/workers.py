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


class LabWorker(Worker):
    def __init__(self, *args, **kwargs):
        from sandbox.jobs import on_horse_killed

        kwargs.setdefault("job_monitoring_interval", HEARTBEAT_SECONDS)
        kwargs.setdefault("worker_ttl", WORKER_TTL_SECONDS)
        kwargs.setdefault("maintenance_interval", MAINTENANCE_SECONDS)
        kwargs.setdefault("work_horse_killed_handler", on_horse_killed)
        super().__init__(*args, **kwargs)


def scheduler_alive(connection: Redis, queue: str = "lab", fresh_seconds: float = 10) -> bool:
    """True when a scheduler holds the queue's lock and has heartbeated recently.

    The lock alone is not enough: after a Redis restart the lock of a dead scheduler survives in the
    append-only file for up to a minute.
    """
    holder = connection.get(RQScheduler.get_locking_key(queue))
    if not holder:
        return False
    raw = connection.hget(SCHEDULER_KEY_TEMPLATE % holder.decode(), "last_heartbeat")
    if not raw:
        return False
    age = (datetime.now(UTC) - utcparse(raw.decode()).replace(tzinfo=UTC)).total_seconds()
    return age < fresh_seconds
