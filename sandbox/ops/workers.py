"""The worker class `make run` and the tests start (through django-rq's `rqworker-pool`)."""

import contextlib
import gc
import logging
import time

from django.db import DatabaseError, connections
from redis.exceptions import RedisError
from rq import Worker
from rq.job_lifecycle import call_exception_handlers

from prepsite.redis_conn import redis_is_full
from prepsite.supervise import die_with_parent
from sandbox.engine import rq_storage
from sandbox.engine.live import parse_job_id
from sandbox.models import Experiment, LedgerEntry
from sandbox.ops.jobs import INJECTED, on_horse_killed

# A busy worker heartbeats every this many seconds; the janitor uses it to spot dead workers fast.
HEARTBEAT_SECONDS = 2
# An idle worker wakes this often (worker_ttl - 15): it re-registers, and after a Redis restart its
# maintenance pass restarts the scheduler, which RQ would otherwise leave dead for up to 10 minutes.
WORKER_TTL_SECONDS = 20
MAINTENANCE_SECONDS = 5


# While Redis is full a failed attempt is filed again after these waits (about 16 s in all, well inside the
# minute RQ's work-horse monitor allows past a job's timeout); then RQ's abandoned-job cleanup has it.
FILE_AGAIN_AFTER_S = (0.1, 0.2, 0.5, 1, 2, 4, 8)


class RidesOutRedisFull:
    """What a Lab worker adds to RQ's for a Redis at maxmemory refusing writes for a while.

    RQ 3.0 lets refused writes escape its error handling. The job's heartbeat as an attempt ends (before the
    failure callback runs) and the status Job.retry() sets outside its transaction took a SimpleWorker down, and
    made a forking work-horse exit 1, which its parent filed as a crash, spending a retry on an attempt the failure
    callback had refunded; the parent's own heartbeat while its horse works took the worker down. And when Redis
    refuses the transaction that files a failure, RQ logs it and moves on, leaving the job 'started' until its
    abandoned-job cleanup spends a retry on it. Here a refused heartbeat is skipped, and a failure RQ could not
    file is filed again once Redis has room, with the retry budget the failure callback left it.
    """

    def handle_execution_ended(self, job, queue, heartbeat_ttl):
        with self._heartbeat_may_be_refused(job, "at the end of the attempt"):
            super().handle_execution_ended(job, queue, heartbeat_ttl)

    def maintain_heartbeats(self, job, execution):
        # The parent's heartbeat while its horse works: refused, it escaped and took the worker down.
        with self._heartbeat_may_be_refused(job, "while it runs"):
            super().maintain_heartbeats(job, execution)

    @contextlib.contextmanager
    def _heartbeat_may_be_refused(self, job, when: str):
        try:
            yield
        except RedisError as exc:
            if not redis_is_full(exc):
                raise
            self.log.warning("job %s: Redis is full: its heartbeat %s was skipped", job.id, when)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):
        retries_left = job.retries_left  # RQ's retry() spends one of them on the Job object, filed or not
        for wait in (*FILE_AGAIN_AFTER_S, None):
            try:
                super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
            except RedisError as exc:  # Job.retry() writes the job's status outside RQ's transaction
                if not redis_is_full(exc):
                    raise
            if rq_storage.failure_filed(queue, job.id, execution.id if execution else None):
                return
            if wait is None:
                self.log.error("job %s: Redis refused to file its failure for %s s", job.id, sum(FILE_AGAIN_AFTER_S))
                return
            job.retries_left = retries_left
            self.wait_for_room(wait)

    def wait_for_room(self, seconds: float) -> None:
        time.sleep(seconds)


class LabWorker(RidesOutRedisFull, Worker):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("job_monitoring_interval", HEARTBEAT_SECONDS)
        kwargs.setdefault("worker_ttl", WORKER_TTL_SECONDS)
        kwargs.setdefault("maintenance_interval", MAINTENANCE_SECONDS)
        kwargs.setdefault("work_horse_killed_handler", on_horse_killed)
        # RQ then names every job by its id, which is what prepsite.logs.QuietLabJobs recognises.
        kwargs.setdefault("log_job_description", False)
        super().__init__(*args, **kwargs)
        # rqworker-pool forks each worker and builds it in the child: a SIGKILLed pool takes its workers
        # with it, so a restarted pool never runs beside the old one's (healthz counted 9 of 4).
        die_with_parent()
        self.log.addFilter(quiet_maintenance)
        warm_up()

    def handle_exception(self, job, *exc_info):
        # sandbox.ops.jobs.on_failure already logged an injected fault in one line; its traceback is noise.
        # Anything else keeps RQ's full traceback.
        if parse_job_id(job.id) and exc_info[0] is not None and issubclass(exc_info[0], INJECTED):
            call_exception_handlers(self._exc_handlers, job, *exc_info)
        else:
            super().handle_exception(job, *exc_info)

    def fork_work_horse(self, job, queue):
        gc.freeze()
        super().fork_work_horse(job, queue)


def quiet_maintenance(record: logging.LogRecord) -> bool:
    """Maintenance every 5 s would print two lines per worker each time; keep job lines readable."""
    message = str(record.msg)
    return "cleaning registries" not in message and "cleaning group registries" not in message


def warm_up() -> None:
    """Pay Django's first-query costs once in the worker, not in every forked work-horse.

    The first ORM query of a process fills Django's lazy caches; a work-horse that inherits them
    starts its job about 10 ms sooner. The connection itself is closed again: a forked child must
    open its own.
    """
    try:
        LedgerEntry.objects.filter(experiment_id=0, order_number=0).exists()
        Experiment.objects.filter(pk=0, status=Experiment.Status.RUNNING).update(status=Experiment.Status.RUNNING)
    except DatabaseError:
        pass  # no database yet: the horse will say so when a job needs it
    finally:
        connections.close_all()
