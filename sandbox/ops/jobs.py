"""RQ entry points. Thin: they take ids and call domain code."""

import logging
import signal
import time

from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from sandbox.engine import experiments, handler
from sandbox.engine.live import Recorder, parse_job_id
from sandbox.workflows.fanin import ChildFailed
from sandbox.workflows.outbox import CommitFailed
from sandbox.workflows.saga import CompensationFailed

# One line per attempt of a Lab job (RQ's own per-job lines are filtered out by prepsite.logs).
log = logging.getLogger("sandbox.lab")
# Faults the Lab injects on purpose: expected, so one line each and no traceback.
INJECTED = (
    handler.TransientError,
    handler.PoisonMessage,
    JobTimeoutException,
    CommitFailed,
    CompensationFailed,
    ChildFailed,
)


def charge_order(experiment_id: int, job_index: int, run: str = "") -> str:
    job = get_current_job()
    # RQ's own connection is already open in the work-horse; a second one would cost a handshake per job.
    recorder = Recorder(experiment_id, job.connection)
    outcome = handler.process(recorder, job_index, job_id=job.id, worker=job.worker_name or "", run=run)
    log.info("%s: %s", attempt_label(job), outcome)
    if recorder.may_be_finished:
        experiments.finish_if_done(experiment_id, job.connection, prechecked=True)
    return outcome


def attempt_label(job: Job) -> str:
    """'lab exp 12 job 3 attempt 2/4', counted within the job's retry budget (a redrive restores it)."""
    experiment_id, job_index = parse_job_id(job.id)
    total = 1 + len(job.retry_intervals or ())
    return f"lab exp {experiment_id} job {job_index} attempt {total - (job.retries_left or 0)}/{total}"


def record_failure(job: Job, kind: str, error: str, fault: str, level: int = logging.INFO) -> None:
    """Called for every failed attempt, before RQ decrements retries_left."""
    ids = parse_job_id(job.id)
    if ids is None:
        return
    experiment_id, job_index = ids
    delay = job.get_retry_interval() if job.retries_left else None
    next_step = "dead-lettered" if delay is None else f"retry in {delay}s"
    log.log(level, "%s: %s -> %s", attempt_label(job), fault, next_step)
    retry_at = None if delay is None else time.time() + delay
    Recorder(experiment_id, job.connection).attempt_failed(
        job=job_index, job_id=job.id, kind=kind, error=error, retry_at=retry_at
    )
    if retry_at is None:
        experiments.finish_if_done(experiment_id, job.connection)


def on_failure(job: Job, connection, exc_type, exc_value, traceback) -> None:
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        kind = "timeout"
    elif exc_type is not None and issubclass(exc_type, AbandonedJobError):
        kind = "abandoned"
    else:
        kind = "error"
    error = f"{exc_type.__name__}: {exc_value}" if exc_type else "failed"
    if kind == "abandoned":
        error = "worker died mid-job; recovered by the janitor"
        record_failure(job, kind, error, error)
    elif exc_type is not None and issubclass(exc_type, INJECTED):
        record_failure(job, kind, error, f"{exc_type.__name__} (injected)")
    else:
        # A real bug: RQ logs its traceback right after this line (LabWorker.handle_exception).
        record_failure(job, kind, error, error, logging.ERROR)


def on_horse_killed(job: Job, retpid: int, ret_val: int, rusage) -> None:
    # The crash preset and "crash its worker" SIGKILL the work-horse; its raw wait status is then 9.
    injected = ret_val == signal.SIGKILL
    fault = "work-horse SIGKILLed (injected)" if injected else f"work-horse died (waitpid returned {ret_val})"
    error = f"work-horse terminated unexpectedly; waitpid returned {ret_val} (SIGKILL)"
    record_failure(job, "crash", error, fault, logging.INFO if injected else logging.ERROR)
