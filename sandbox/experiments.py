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
from rq.rate_limit import RateLimit, RateLimitRegistry
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from prepsite.redis_conn import LAB_QUEUE, get_redis, redis_is_full
from prepsite.visitor import Visitor
from sandbox import delivery, fairshare, limits, live, readmodel
from sandbox.limits import CLI_KEY, LimitExceeded  # noqa: F401  (callers catch the service's own error)
from sandbox.models import Experiment
from sandbox.params import admitted_jobs, worst_case_worker_seconds
from sandbox.retry_policy import retry_intervals

log = logging.getLogger(__name__)

REDRIVE_PER_SECOND = 20  # a redrive is itself a spike: release the DLQ in paced batches
RESULT_TTL = 600


class StartFailed(Exception):
    """Starting failed part-way; everything it had created was removed again."""


def lab_queue(connection: Redis | None = None) -> Queue:
    """The lab queue as django-rq configures it, on the site's shared client (one pool per process)."""
    return django_rq.get_queue(LAB_QUEUE, connection=connection or get_redis())


def new_seed() -> int:
    return random.randrange(2**31)


def experiment_start(
    *,
    owner: Visitor,
    limit_key: str = CLI_KEY,
    preset: str,
    params: dict,
    seed: int | None = None,
    prediction: str = "",
    predicted: dict | None = None,
) -> Experiment:
    """Create the experiment, admit up to queue_cap jobs onto the real lab queue, shed the rest.

    All or nothing: if anything fails part-way, every job and record it made is removed again.
    """
    limits.check_start(limit_key, params)
    if delivery.model_of(params) != "rq" and not delivery.members(get_redis()):
        raise StartFailed(
            "No stream/log consumer is running (make run starts them: `manage.py lab_consumers`), so this run's "
            "messages would never be delivered. Nothing was started; try the rq model, or again in a minute."
        )
    seed = seed if seed is not None else new_seed()
    experiment = Experiment.objects.create(
        **owner.owner(),
        limit_key=limit_key,
        preset=preset,
        params=params,
        seed=seed,
        prediction=prediction,
        predicted=predicted or {},
    )
    try:
        _admit(experiment)
    except Exception as exc:
        _abort(experiment)
        log.exception("starting experiment %s failed; removed what it had created", experiment.pk)
        full = "full" if redis_is_full(exc) else "not answering"
        raise StartFailed(
            f"The lab could not start this experiment (Redis is {full}); nothing was left running. Try again later."
        ) from exc
    finish_if_done(experiment.pk)
    return experiment


def _admit(experiment: Experiment) -> None:
    params, seed = experiment.params, experiment.seed
    recorder = live.Recorder(experiment.pk)
    run = recorder.create(params=params, seed=seed, requested=params["jobs"])
    recorder.charge_budget(worst_case_worker_seconds(params))
    admitted = admitted_jobs(params)
    slots = fairshare.rebalance(get_redis()).get(experiment.limit_key, 1)
    rate_limit = RateLimit(key=fairshare.rate_key(experiment.limit_key), concurrency=slots)
    now = time.time()
    spacing = 1 / params["arrival_per_s"] if params["arrival_per_s"] > 0 and admitted > 1 else 0
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
    if delivery.model_of(params) != "rq":
        delivery.admit(experiment.pk, params, arrivals, run)
        return
    queue = lab_queue()
    for job in jobs:  # one call per job: RQ refuses rate-limited jobs in a pipeline
        options = dict(
            args=(experiment.pk, job, run),
            job_id=live.job_id_for(experiment.pk, job),
            job_timeout=params["timeout_s"],
            result_ttl=RESULT_TTL,
            failure_ttl=live.TTL_SECONDS,
            ttl=live.JOB_TTL_SECONDS,
            retry=Retry(max=params["max_retries"], interval=schedule[job]) if params["max_retries"] else None,
            on_failure=Callback("sandbox.jobs.on_failure"),
            rate_limit=rate_limit,
        )
        if spacing:
            queue.enqueue_in(timedelta(seconds=(job - 1) * spacing), "sandbox.jobs.charge_order", **options)
        else:
            queue.enqueue("sandbox.jobs.charge_order", **options)


def _abort(experiment: Experiment) -> None:
    """Remove every job and record a failed start made, best effort (Redis may be why it failed)."""
    connection = get_redis()
    for job in range(1, admitted_jobs(experiment.params) + 1):
        with contextlib.suppress(NoSuchJobError, RedisError):
            Job.fetch(live.job_id_for(experiment.pk, job), connection=connection).delete()
    with contextlib.suppress(RedisError):
        delivery.unschedule(experiment.pk, range(1, admitted_jobs(experiment.params) + 1))
        get_redis().hdel(delivery.ACTIVE, str(experiment.pk))
    with contextlib.suppress(RedisError):
        live.Recorder(experiment.pk).discard_all()
    Experiment.objects.filter(pk=experiment.pk).delete()
    with contextlib.suppress(RedisError, DatabaseError):
        fairshare.rebalance(connection)


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
    (connection or get_redis()).hdel(delivery.ACTIVE, str(experiment_id))  # stream/log consumers stop polling it
    summary = readmodel.summarize(experiment, state)
    updated = Experiment.objects.filter(pk=experiment_id, status=Experiment.Status.RUNNING).update(
        status=Experiment.Status.FINISHED, finished_at=timezone.now(), summary=summary
    )
    if not updated:
        Experiment.objects.filter(pk=experiment_id).update(summary=summary)
    else:
        fairshare.rebalance(connection or get_redis())  # its share goes to the others at once
    return True


def experiment_redrive(experiment: Experiment, jobs: list[int] | None = None, *, limit_key: str = CLI_KEY) -> int:
    """Move dead-lettered jobs back with their whole retry budget, paced; safe to double-submit.

    Redriving everything takes a short per-experiment lock, so simultaneous clicks redrive once.
    """
    recorder = live.Recorder(experiment.pk)
    if jobs is None and not recorder.take_redrive_lock():
        return 0
    candidates = jobs if jobs is not None else live.read(experiment.pk, events=0).dlq
    if not candidates:
        return 0
    limits.check_redrive(experiment, len(candidates), limit_key)
    if delivery.model_of(experiment.params) != "rq":
        redriven = _redrive_messages(experiment, recorder, candidates)
    else:
        redriven = _redrive_jobs(experiment, recorder, candidates)
    if redriven:
        recorder.charge_budget(worst_case_worker_seconds({**experiment.params, "duplicate_rate": 0}, jobs=redriven))
        Experiment.objects.filter(pk=experiment.pk).update(status=Experiment.Status.RUNNING, finished_at=None)
    return redriven


def _redrive_messages(experiment: Experiment, recorder: live.Recorder, candidates: list[int]) -> int:
    """Stream and log: publish each dead-lettered message again (a new entry, a fresh delivery budget)."""
    redriven = 0
    for job_index in candidates:
        if not recorder.claim_from_dlq(job_index):
            continue
        recorder.redriven(job_index)
        delivery.redrive(experiment.pk, experiment.params, job_index)
        redriven += 1
    return redriven


def _redrive_jobs(experiment: Experiment, recorder: live.Recorder, candidates: list[int]) -> int:
    queue = lab_queue()
    registry = FailedJobRegistry(queue=queue)
    redriven = 0
    for job_index in candidates:
        if not recorder.claim_from_dlq(job_index):
            continue  # someone else's click got there first
        job_id = live.job_id_for(experiment.pk, job_index)
        if not _wait_failure_settled(experiment, registry, job_id):
            recorder.return_to_dlq(job_index)  # RQ has not filed it yet: leave it for the next click
            recorder.note("redrive_skipped", job_index, detail="RQ was still filing it as failed; redrive it again")
            continue
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
    return redriven


def _wait_failure_settled(
    experiment: Experiment, registry: FailedJobRegistry, job_id: str, wait_s: float = 5.0
) -> bool:
    """RQ runs our failure callback (which records the dead letter) just before it files the job as
    failed, and releases the job's fair-share slot just after. A redrive or discard in that gap waits
    for both, or it would requeue a job RQ is still finishing. False only if RQ has not filed it
    after wait_s; a job that has expired is left for the caller to report as skipped."""
    connection = registry.connection
    slots = RateLimitRegistry(fairshare.rate_key(experiment.limit_key), connection=connection).allowed_key
    deadline = time.monotonic() + wait_s
    while connection.exists(Job.key_for(job_id)):
        filed = job_id in registry
        if filed and connection.zscore(slots, job_id) is None:
            return True
        if time.monotonic() > deadline:
            return filed  # filed, but its slot still held after seconds: a stale slot, not this race
        time.sleep(0.05)
    return True


def experiment_fix_consumer(experiment: Experiment) -> bool:
    """Deploy the fix for the poison messages (the DLQ's purpose: park, fix, replay). True the first time."""
    return live.Recorder(experiment.pk).fix_consumer()


def experiment_discard(experiment: Experiment, jobs: list[int] | None = None) -> int:
    recorder = live.Recorder(experiment.pk)
    candidates = jobs if jobs is not None else live.read(experiment.pk, events=0).dlq
    registry = FailedJobRegistry(queue=lab_queue())
    discarded = 0
    for job_index in candidates:
        if not recorder.claim_from_dlq(job_index):
            continue
        job_id = live.job_id_for(experiment.pk, job_index)
        if not _wait_failure_settled(experiment, registry, job_id):
            recorder.return_to_dlq(job_index)  # deleting it now would let RQ's filing bring it back
            continue
        with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
            registry.remove(job_id, delete_job=True)
        recorder.discarded(job_index)
        discarded += 1
    return discarded


def experiment_stop(experiment: Experiment) -> int:
    """Stop the run: jobs not yet started come off the schedule, the queue and the rate limiter at once
    (terminal as 'stopped'); a job a worker picks up after this ends as 'stopped' too. Returns how
    many were taken off."""
    connection = get_redis()
    connection.set(live.flag_key(experiment.pk, "stop"), 1, ex=live.TTL_SECONDS)
    recorder = live.Recorder(experiment.pk)
    recorder.note("experiment_stop_requested")
    jobs = range(1, admitted_jobs(experiment.params) + 1)
    if delivery.model_of(experiment.params) != "rq":
        taken = delivery.unschedule(experiment.pk, jobs)
        stopped = recorder.stopped_before_start(taken, "experiment stopped before this message arrived")
        finish_if_done(experiment.pk)
        return stopped
    queue = lab_queue(connection)
    held = RateLimitRegistry(fairshare.rate_key(experiment.limit_key), connection=connection)
    scheduled = ScheduledJobRegistry(queue=queue)
    pipe = connection.pipeline(transaction=False)
    for job in jobs:
        job_id = live.job_id_for(experiment.pk, job)
        pipe.zrem(scheduled.key, job_id)
        pipe.zrem(held.rate_limited_key, job_id)
        pipe.lrem(queue.key, 0, job_id)
    removed = pipe.execute()
    taken = [job for job, n in zip(jobs, range(0, len(removed), 3), strict=True) if any(removed[n : n + 3])]
    for job in taken:
        with contextlib.suppress(NoSuchJobError):
            Job.fetch(live.job_id_for(experiment.pk, job), connection=connection).delete()
    stopped = recorder.stopped_before_start(taken, "experiment stopped before this job ran")
    finish_if_done(experiment.pk)
    return stopped


START_GRACE_S = 5  # experiment_start writes the row, then the Redis record, within milliseconds


def reap(connection: Redis | None = None) -> list[int]:
    """Finish what can make no more progress: runs whose live state expired, and runs older than any
    of their jobs may live (each job's RQ ttl); also any finished run still marked running."""
    connection = connection or get_redis()
    running = list(Experiment.objects.active())
    pipe = connection.pipeline(transaction=False)
    for experiment in running:
        pipe.exists(live.key(experiment.pk, "c"))
    alive = pipe.execute() if running else []
    now = timezone.now()
    cutoff = now - timedelta(seconds=live.JOB_TTL_SECONDS)
    reaped = []
    for experiment, exists in zip(running, alive, strict=True):
        if not exists and experiment.created_at > now - timedelta(seconds=START_GRACE_S):
            continue  # a start between its row and its Redis record, not a run whose record expired
        if exists and experiment.created_at > cutoff:
            finish_if_done(experiment.pk, connection)
            continue
        if exists:
            experiment_stop(experiment)
            if finish_if_done(experiment.pk, connection):
                continue
        summary = readmodel.outcome(experiment) if exists else experiment.summary
        Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.RUNNING).update(
            status=Experiment.Status.STOPPED, finished_at=timezone.now(), summary=summary
        )
        reaped.append(experiment.pk)
    return reaped


class KillRefused(Exception):
    """Killing that consumer is not something this run allows now; shown with HTTP 400."""


def experiment_kill_consumer(experiment: Experiment, name: str, *, limit_key: str = CLI_KEY) -> str:
    """Ask a live consumer to SIGKILL itself from the live view of a running stream or log run; returns
    what to tell the visitor."""
    model = delivery.model_of(experiment.params)
    if model == "rq":
        raise KillRefused("This run is on RQ: it has no stream or log consumers. Crash a running job's worker instead.")
    if not experiment.is_running:
        raise KillRefused(
            f"Experiment #{experiment.pk} has ended; kill a consumer while a stream or log run is running."
        )
    limits.check_kill(limit_key)  # before the name is checked: guessing at names spends the budget too
    names = delivery.members(get_redis())
    if name not in names:
        raise KillRefused(f"No live consumer is called {name}; it may have just died. Pick one from the list.")
    if len(names) < 2:
        raise KillRefused(
            "Only one consumer is alive: killing it would stall every stream and log run. Try again soon."
        )
    if not delivery.request_kill(name, experiment.pk):
        raise KillRefused(f"No live consumer is called {name}; it may have just died. Pick one from the list.")
    live.Recorder(experiment.pk).note("consumer_kill_requested", detail=f"you asked {name} to die (SIGKILL)")
    after = {
        "log": "its partitions move to the others once its lease runs out",
        "stream": "another consumer claims its unacknowledged message after the visibility timeout",
    }[model]
    return (
        f"Consumer {name} will be killed (SIGKILL) within a second, or as soon as it finishes another run's "
        f"message: {after}. The pool restarts it a few seconds later."
    )


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
