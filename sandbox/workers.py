"""The worker class `make run` and the tests start (through django-rq's `rqworker-pool`)."""

from rq import Worker

# A busy worker heartbeats every this many seconds; the janitor uses it to spot dead workers fast.
HEARTBEAT_SECONDS = 2


class LabWorker(Worker):
    def __init__(self, *args, **kwargs):
        from sandbox.jobs import on_horse_killed

        kwargs.setdefault("job_monitoring_interval", HEARTBEAT_SECONDS)
        kwargs.setdefault("work_horse_killed_handler", on_horse_killed)
        super().__init__(*args, **kwargs)
