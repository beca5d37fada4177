"""Starting, redriving, stopping and finishing experiments: the Lab's service functions."""

import contextlib
import logging
import random
import time
from datetime import UTC, datetime, timedelta

import django_rq
from django.db import DatabaseError
from django.utils import timezone
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Callback, Job
from rq.rate_limit import RateLimit
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from prepsite.ratelimit import allow
from prepsite.redis_conn import LAB_QUEUE, get_redis
from prepsite.visitor import CLI, Visitor
from sandbox import live, readmodel
from sandbox.models import Experiment
from sandbox.retry_policy import retry_intervals

log = logging.getLogger(__name__)

ACTIVE_PER_OWNER = 3
ACTIVE_WINDOW = timedelta(minutes=30)  # a "running" row older than this no longer blocks new runs
STARTS_PER_MINUTE = 10
GLOBAL_DEPTH_CAP = 5000
MAX_WORKER_SECONDS = 900
REDRIVE_PER_SECOND = 20  # a redrive is itself a spike: release the DLQ in paced batches
REDRIVES_PER_MINUTE = 20
FAILURE_TTL = live.TTL_SECONDS
RESULT_TTL = 600


class LimitExceeded(Exception):
    """A shared-lab limit; shown to the visitor with HTTP 429."""


def lab_queue() -> Queue:
    """The lab queue as django-rq configures it, on the site's shared client (one pool per process)."""
    return django_rq.get_queue(LAB_QUEUE, connection=get_redis())


def worst_case_worker_seconds(params: dict) -> float:
    per_attempt = (params["duration_ms"] + params["duration_spread_ms"]) / 1000
    return params["jobs"] * per_attempt * (params["max_retries"] + 1)


def check_limits(owner: Visitor, params: dict) -> None:
    worst = worst_case_worker_seconds(params)
    if worst > MAX_WORKER_SECONDS:
        raise LimitExceeded(
            f"This run could use {worst:.0f} worker-seconds; the limit per experiment is {MAX_WORKER_SECONDS}. "
            "Lower jobs, duration_ms or max_retries."
        )
    recent = timezone.now() - ACTIVE_WINDOW
    active = Experiment.objects.owned_by(owner).active().filter(created_at__gte=recent).count()
    if active >= ACTIVE_PER_OWNER and owner != CLI:
        raise LimitExceeded(f"You already have {active} experiments running; wait for one to finish or stop it.")
    if owner != CLI and not allow("lab-start", owner.key, limit=STARTS_PER_MINUTE, window_s=60, fail_open=False):
        raise LimitExceeded(f"At most {STARTS_PER_MINUTE} experiments a minute; try again shortly.")
    queue = lab_queue()
    depth = queue.count + ScheduledJobRegistry(queue=queue).get_job_count(cleanup=False)
    if depth + params["jobs"] > GLOBAL_DEPTH_CAP:
        raise LimitExceeded(f"The shared lab queue holds {depth} jobs right now; try again in a minute.")


def experiment_start(
    *, owner: Visitor, preset: str, params: dict, seed: int | None = None, prediction: str = ""
) -> Experiment:
    """Create the experiment, admit up to queue_cap jobs onto the real lab queue, shed the rest."""
    check_limits(owner, params)
    seed = seed if seed is not None else random.randrange(2**31)
    experiment = Experiment.objects.create(
        **owner.owner(),
        preset=preset,
        params=params,
        seed=seed,
        prediction=prediction,
    )
    recorder = live.Recorder(experiment.pk)
    recorder.create(params=params, seed=seed, requested=params["jobs"])
    admitted = min(params["jobs"], params["queue_cap"])
    rate_limit = RateLimit(key=f"lab-exp-{experiment.pk}", concurrency=params["concurrency"])
    now = time.time()
    spacing = 1 / params["arrival_per_s"] if params["arrival_per_s"] > 0 else 0
    jobs = range(1, admitted + 1)
    arrivals = {job: now + (job - 1) * spacing for job in jobs}
    schedule = {
        job: retry_intervals(
            max_retries=params["max_retries"],
            backoff=params["backoff"],
            base_s=params["backoff_base_s"],
            cap_s=params["backoff_cap_s"],
            jitter=params["jitter"],
            rng=random.Random(f"{seed}:{job}:retry"),
        )
        for job in jobs
    }
    # Account for the admission before the first job can finish, so no worker sees a half-started run.
    recorder.admitted(arrivals=arrivals, rejected=params["jobs"] - admitted, schedule=schedule)
    queue = lab_queue()
    for job in jobs:  # one call per job: RQ refuses rate-limited jobs in a pipeline
        options = dict(
            args=(experiment.pk, job),
            job_id=live.job_id_for(experiment.pk, job),
            job_timeout=params["timeout_s"],
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            ttl=live.TTL_SECONDS,
            retry=Retry(max=params["max_retries"], interval=schedule[job]) if params["max_retries"] else None,
            on_failure=Callback("sandbox.jobs.on_failure"),
            rate_limit=rate_limit,
        )
        if spacing:
            queue.enqueue_in(timedelta(seconds=(job - 1) * spacing), "sandbox.jobs.charge_order", **options)
        else:
            queue.enqueue("sandbox.jobs.charge_order", **options)
    finish_if_done(experiment.pk)
    return experiment


def finish_if_done(experiment_id: int, connection: Redis | None = None, *, prechecked: bool = False) -> bool:
    """Mark the experiment finished once every admitted job is terminal. Bookkeeping only: never raises.

    prechecked: the caller's last write already saw the counters add up (skips a round trip).
    """
    try:
        return _finish_if_done(experiment_id, connection, prechecked)
    except (RedisError, DatabaseError):
        log.exception("could not check whether experiment %s finished; the next read will", experiment_id)
        return False


def _finish_if_done(experiment_id: int, connection: Redis | None, prechecked: bool) -> bool:
    if not prechecked and not live.looks_finished(experiment_id, connection):
        return False
    experiment = Experiment.objects.filter(pk=experiment_id).first()
    if experiment is None:
        return False
    state = readmodel.read_state(experiment, connection=connection)
    if not state.finished:
        return False
    summary = readmodel.summarize(experiment, state)
    updated = Experiment.objects.filter(pk=experiment_id, status=Experiment.Status.RUNNING).update(
        status=Experiment.Status.FINISHED, finished_at=timezone.now(), summary=summary
    )
    if not updated:
        Experiment.objects.filter(pk=experiment_id).update(summary=summary)
    return True


def experiment_redrive(experiment: Experiment, jobs: list[int] | None = None, *, by: Visitor = CLI) -> int:
    """Move dead-lettered jobs back with their whole retry budget, paced; safe to double-submit."""
    if by != CLI and not allow("lab-redrive", by.key, limit=REDRIVES_PER_MINUTE, window_s=60, fail_open=False):
        raise LimitExceeded(f"At most {REDRIVES_PER_MINUTE} redrives a minute; the DLQ is not going anywhere.")
    recorder = live.Recorder(experiment.pk)
    candidates = jobs if jobs is not None else live.read(experiment.pk, events=0).dlq
    queue = lab_queue()
    registry = FailedJobRegistry(queue=queue)
    redriven = 0
    for job_index in candidates:
        if not recorder.claim_from_dlq(job_index):
            continue  # someone else's click got there first
        job_id = live.job_id_for(experiment.pk, job_index)
        try:
            job = Job.fetch(job_id, connection=queue.connection)
            # RQ's requeue keeps retries_left at 0: restore the budget first.
            job.retries_left = experiment.params["max_retries"]
            job.save()
            batch = redriven // REDRIVE_PER_SECOND
            if batch == 0:
                registry.requeue(job_id)
            else:
                registry.remove(job)
                queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=batch))
        except (NoSuchJobError, InvalidJobOperation):
            recorder.note("redrive_skipped", job_index, detail="job expired or no longer in the DLQ")
            continue
        recorder.redriven(job_index)
        redriven += 1
    if redriven:
        Experiment.objects.filter(pk=experiment.pk).update(status=Experiment.Status.RUNNING, finished_at=None)
    return redriven


def experiment_discard(experiment: Experiment, jobs: list[int] | None = None) -> int:
    recorder = live.Recorder(experiment.pk)
    candidates = jobs if jobs is not None else live.read(experiment.pk, events=0).dlq
    registry = FailedJobRegistry(queue=lab_queue())
    discarded = 0
    for job_index in candidates:
        if not recorder.claim_from_dlq(job_index):
            continue
        job_id = live.job_id_for(experiment.pk, job_index)
        with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
            registry.remove(job_id, delete_job=True)
        recorder.discarded(job_index)
        discarded += 1
    return discarded


def experiment_stop(experiment: Experiment) -> None:
    """Jobs not yet finished end as 'stopped' the next time a worker picks them up."""
    redis = get_redis()
    redis.set(live.flag_key(experiment.pk, "stop"), 1, ex=live.TTL_SECONDS)
    live.Recorder(experiment.pk).note("experiment_stop_requested")


def _flag_running_job(experiment: Experiment, job_index: int, flag: str) -> bool:
    """Leave a request for a running job's work-horse in Redis; it works wherever the job runs."""
    if job_index not in live.read(experiment.pk, events=0).running:
        return False
    get_redis().set(live.flag_key(experiment.pk, f"{flag}:{job_index}"), 1, ex=30)
    return True


def job_crash(experiment: Experiment, job_index: int) -> bool:
    """Ask the running job's work-horse to SIGKILL itself."""
    return _flag_running_job(experiment, job_index, "crash")


def job_stop(experiment: Experiment, job_index: int) -> bool:
    """Ask the running job to end as 'stopped' at its next checkpoint."""
    return _flag_running_job(experiment, job_index, "stop")
