"""RQ entry points. Thin: they take ids and call domain code."""

import time

from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from sandbox import consumer, experiments
from sandbox.live import Recorder, parse_job_id


def charge_order(experiment_id: int, job_index: int) -> str:
    job = get_current_job()
    # RQ's own connection is already open in the work-horse; a second one would cost a handshake per job.
    recorder = Recorder(experiment_id, job.connection)
    outcome = consumer.process(recorder, job_index, job_id=job.id, worker=job.worker_name or "")
    if recorder.may_be_finished:
        experiments.finish_if_done(experiment_id, job.connection, prechecked=True)
    return outcome


def record_failure(job: Job, kind: str, error: str) -> None:
    """Called for every failed attempt, before RQ decrements retries_left."""
    ids = parse_job_id(job.id)
    if ids is None:
        return
    experiment_id, job_index = ids
    retry_at = time.time() + job.get_retry_interval() if job.retries_left else None
    Recorder(experiment_id, job.connection).attempt_failed(
        job=job_index, job_id=job.id, kind=kind, error=error, retry_at=retry_at
    )
    if retry_at is None:
        experiments.finish_if_done(experiment_id, job.connection)


def on_failure(job: Job, connection, exc_type, exc_value, traceback) -> None:
    from rq.exceptions import AbandonedJobError

    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        kind = "timeout"
    elif exc_type is not None and issubclass(exc_type, AbandonedJobError):
        kind = "abandoned"
    else:
        kind = "error"
    error = f"{exc_type.__name__}: {exc_value}" if exc_type else "failed"
    if kind == "abandoned":
        error = "worker died mid-job; recovered by the janitor"
    record_failure(job, kind, error)


def on_horse_killed(job: Job, retpid: int, ret_val: int, rusage) -> None:
    record_failure(job, "crash", f"work-horse terminated unexpectedly; waitpid returned {ret_val} (SIGKILL)")
