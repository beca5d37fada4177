"""RQ entry points. Thin: they take ids and call domain code."""

import logging
import signal
import time

from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from prepsite.redis_conn import redis_is_full
from sandbox.engine import experiments, handler, rq_storage
from sandbox.engine.live import Recorder, parse_job_id
from sandbox.workflows.fanin import ChildFailed
from sandbox.workflows.outbox import CommitFailed
from sandbox.workflows.saga import CompensationFailed

# One line per attempt of a Lab job (RQ's own per-job lines are filtered out by prepsite.logs).
log = logging.getLogger("sandbox.lab")
# An attempt Redis cut short by refusing a write is run again without spending the retry budget, this many times
# per job; after that a Redis that stays full spends the budget and dead-letters the job, saying so in its events.
REDIS_REFUSALS_REFUNDED = 10
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
    if redis_is_full(exc_value):
        redis_refused(job, f"{exc_type.__name__}: {exc_value}")
        return
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


def redis_refused(job: Job, error: str) -> None:
    """The attempt failed because Redis refused a write (full), not because of the job: RQ must not spend a retry
    on it (it did: the Lab's attempt counter, the first write of an attempt, had not counted it, so the job was
    dead-lettered an attempt early). The refund comes first, since the Lab's own record below may be refused too;
    RQ then persists the job with its budget intact, or, if Redis still refuses, leaves it for the janitor."""
    ids = parse_job_id(job.id)
    if ids is None:
        return
    experiment_id, job_index = ids
    refund = rq_storage.refund_retry(job, most=REDIS_REFUSALS_REFUNDED)
    recorder = Recorder(experiment_id, job.connection)
    if refund is None:
        detail = f"Redis refused a write after {REDIS_REFUSALS_REFUNDED} re-runs: this attempt spends the retry budget"
        recorder.note("redis_refused", job_index, error=error[:200], detail=detail)
        record_failure(job, "error", error, "Redis full", logging.ERROR)
        return
    delay = job.get_retry_interval()
    log.warning(
        "lab exp %s job %s: Redis refused a write -> run again in %ss, no retry spent (refusal %s of %s)",
        experiment_id, job_index, delay, refund, REDIS_REFUSALS_REFUNDED,
    )  # fmt: skip
    recorder.attempt_refused(
        job=job_index, job_id=job.id, error=error, retry_at=time.time() + delay,
        refusal=f"{refund} of {REDIS_REFUSALS_REFUNDED}",
    )  # fmt: skip
