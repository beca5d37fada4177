"""The worker class `make run` and the tests start (through django-rq's `rqworker-pool`)."""

from rq import Worker

# A busy worker heartbeats every this many seconds; the janitor uses it to spot dead workers fast.
HEARTBEAT_SECONDS = 2
# An idle worker wakes this often (worker_ttl - 15): it re-registers, and after a Redis restart its
# maintenance pass restarts the scheduler, which RQ would otherwise leave dead for up to 10 minutes.
WORKER_TTL_SECONDS = 30
MAINTENANCE_SECONDS = 10


class LabWorker(Worker):
    def __init__(self, *args, **kwargs):
        from sandbox.jobs import on_horse_killed

        kwargs.setdefault("job_monitoring_interval", HEARTBEAT_SECONDS)
        kwargs.setdefault("worker_ttl", WORKER_TTL_SECONDS)
        kwargs.setdefault("maintenance_interval", MAINTENANCE_SECONDS)
        kwargs.setdefault("work_horse_killed_handler", on_horse_killed)
        super().__init__(*args, **kwargs)
