"""Starting, redriving, stopping and finishing experiments: the Lab's service functions."""

import contextlib
import logging
import random
import time
from datetime import timedelta

from django.db import DatabaseError
from django.utils import timezone
from redis import Redis
from redis.exceptions import RedisError

from prepsite.redis_conn import get_redis, redis_is_full
from prepsite.visitor import Visitor
from sandbox import delivery
from sandbox.engine import fairshare, limits, live, rq_storage
from sandbox.engine import outcome as run_outcome
from sandbox.engine.budget import admitted_jobs, worst_case_worker_seconds
from sandbox.engine.limits import CLI_KEY, LimitExceeded  # callers catch the service's own error
from sandbox.engine.retry_policy import retry_intervals
from sandbox.models import Experiment
from sandbox.workflows import run as workflows

log = logging.getLogger(__name__)


class StartFailed(Exception):
    """Starting failed part-way; everything it had created was removed again."""


def new_seed() -> int:
    return random.randrange(2**31)


def experiment_start(
    *,
    owner: Visitor,
    limit_key: str = CLI_KEY,
    address_key: str = "",
    preset: str,
    params: dict,
    seed: int | None = None,
    prediction: str = "",
    predicted: dict | None = None,
    rerun_of: Experiment | None = None,
) -> Experiment:
    """Create the experiment, admit up to queue_cap jobs onto the real lab queue, shed the rest.

    All or nothing: if anything fails part-way, every job and record it made is removed again.
    """
    run = {"preset": preset, "params": params, "seed": seed, "prediction": prediction, "predicted": predicted,
           "rerun_of": rerun_of}  # fmt: skip
    return experiment_start_many(owner=owner, limit_key=limit_key, address_key=address_key, runs=[run])[0]


def experiment_start_many(*, owner: Visitor, limit_key: str = CLI_KEY, address_key: str = "", runs: list[dict]):
    """Start several runs together ("run it twice", "two models"): both or none.

    Each run is a dict of preset, params and optionally seed, prediction, predicted, rerun_of. The caps are checked for
    all of them and taken under one lock (limits.start_lock), so simultaneous starts cannot pass a cap."""
    with limits.start_lock(get_redis()):
        limits.check_start(limit_key, [run["params"] for run in runs], address_key)
        if any(delivery.model_for(run["params"]).consumed for run in runs) and not delivery.members(get_redis()):
            raise StartFailed(
                "No stream/log consumer is running (make run starts them: `manage.py lab_consumers`), so this "
                "run's messages would never be delivered. Nothing was started; try the rq model, or again in a minute."
            )
        started: list[Experiment] = []
        for run in runs:
            experiment = Experiment.objects.create(
                **owner.owner(),
                limit_key=limit_key,
                address_key=address_key,
                preset=run["preset"],
                params=run["params"],
                seed=run.get("seed") if run.get("seed") is not None else new_seed(),
                prediction=run.get("prediction", ""),
                predicted=run.get("predicted") or {},
                rerun_of=run.get("rerun_of"),
            )
            started.append(experiment)
            try:
                _admit(experiment)
            except Exception as exc:
                for made in started:
                    _abort(made)
                log.exception("starting experiment %s failed; removed what it had created", experiment.pk)
                full = "full" if redis_is_full(exc) else "not answering"
                raise StartFailed(
                    f"The lab could not start this experiment (Redis is {full}); nothing was left running. "
                    "Try again later."
                ) from exc
    for experiment in started:
        finish_if_done(experiment.pk)
    return started


def _admit(experiment: Experiment) -> None:
    params, seed = experiment.params, experiment.seed
    recorder = live.Recorder(experiment.pk)
    run = recorder.create(params=params, seed=seed, requested=params["jobs"])
    recorder.charge_budget(worst_case_worker_seconds(params))
    admitted = admitted_jobs(params)
    rebalance(get_redis())  # the visitor's share, with this run counted, before any job runs
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
    if workflows.is_workflow(params):  # open before any request can end, so the run waits for its relay
        workflows.admit(experiment.pk, experiment.limit_key, run)
    delivery.model_for(params).admit(experiment, run=run, arrivals=arrivals, schedule=schedule)


def _abort(experiment: Experiment) -> None:
    """Remove every job and record a failed start made, best effort (Redis may be why it failed)."""
    connection = get_redis()
    for job in range(1, admitted_jobs(experiment.params) + 1):
        with contextlib.suppress(RedisError):
            rq_storage.delete_job(connection, live.job_id_for(experiment.pk, job))
    with contextlib.suppress(RedisError):
        delivery.unschedule(experiment.pk, range(1, admitted_jobs(experiment.params) + 1))
        rq_storage.delete_job(connection, workflows.tick_job_id(experiment.pk, 1))
        get_redis().hdel(delivery.ACTIVE, str(experiment.pk))
    with contextlib.suppress(RedisError):
        live.Recorder(experiment.pk).discard_all()
    Experiment.objects.filter(pk=experiment.pk).delete()
    with contextlib.suppress(RedisError, DatabaseError):
        rebalance(connection)


def rebalance(connection: Redis) -> None:
    """Every visitor's fair share of the shared workers and of the stream/log consumers, now."""
    fairshare.rebalance(connection)
    delivery.rebalance_consumers(connection)


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
    state = run_outcome.read_state(experiment, connection=connection)
    if not state.finished:
        return False
    (connection or get_redis()).hdel(delivery.ACTIVE, str(experiment_id))  # stream/log consumers stop polling it
    summary = run_outcome.summarize(experiment, state)
    updated = Experiment.objects.filter(pk=experiment_id, status=Experiment.Status.RUNNING).update(
        status=Experiment.Status.FINISHED, finished_at=timezone.now(), summary=summary
    )
    if experiment.first_pass is None:
        stopped = bool(summary.get("stopped")) or bool(
            (connection or get_redis()).exists(live.flag_key(experiment_id, "stop"))
        )
        snapshot = run_outcome.first_pass(experiment, state, summary, stopped=stopped)
        Experiment.objects.filter(pk=experiment_id, first_pass__isnull=True).update(first_pass=snapshot)
    if not updated:
        Experiment.objects.filter(pk=experiment_id).update(summary=summary)
    else:
        rebalance(connection or get_redis())  # its share goes to the others at once
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
    redriven = delivery.model_for(experiment.params).redrive(experiment, recorder, candidates)
    if redriven:
        recorder.charge_budget(worst_case_worker_seconds({**experiment.params, "duplicate_rate": 0}, jobs=redriven))
        Experiment.objects.filter(pk=experiment.pk).update(status=Experiment.Status.RUNNING, finished_at=None)
    return redriven


def experiment_fix_consumer(experiment: Experiment) -> bool:
    """Deploy the fix for the poison messages (the DLQ's purpose: park, fix, replay). True the first time."""
    return live.Recorder(experiment.pk).fix_consumer()


def experiment_discard(experiment: Experiment, jobs: list[int] | None = None) -> int:
    recorder = live.Recorder(experiment.pk)
    candidates = jobs if jobs is not None else live.read(experiment.pk, events=0).dlq
    return delivery.model_for(experiment.params).discard(experiment, recorder, candidates)


def experiment_stop(experiment: Experiment) -> int:
    """Stop the run: jobs not yet started come off the schedule, the queue and the rate limiter at once
    (terminal as 'stopped'); a job a worker picks up after this ends as 'stopped' too. Returns how
    many were taken off."""
    connection = get_redis()
    connection.set(live.flag_key(experiment.pk, "stop"), 1, ex=live.TTL_SECONDS)
    recorder = live.Recorder(experiment.pk)
    recorder.note("experiment_stop_requested")
    jobs = range(1, admitted_jobs(experiment.params) + 1)
    model = delivery.model_for(experiment.params)
    taken = model.stop(experiment, jobs)
    stopped = recorder.stopped_before_start(taken, model.stopped_before)
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
            if not finish_if_done(experiment.pk, connection) and _end_if_at_rest(experiment, connection):
                reaped.append(experiment.pk)
            continue
        if exists:
            experiment_stop(experiment)
            if finish_if_done(experiment.pk, connection):
                continue
        summary = run_outcome.outcome(experiment) if exists else experiment.summary
        Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.RUNNING).update(
            status=Experiment.Status.STOPPED, finished_at=timezone.now(), summary=summary
        )
        reaped.append(experiment.pk)
    return reaped


AT_REST_S = 20  # a run with nothing left to deliver whose outcomes do not add up is ended after this long


def _end_if_at_rest(experiment: Experiment, connection: Redis) -> bool:
    """End a stream/log run that can make no more progress although its outcomes do not add up: every arrival
    published, every message acknowledged or committed, yet some message has no recorded outcome. That is a
    write Redis lost (a restart within its one-second fsync window, a refused write while it was full);
    waiting cannot fix it, and the run would hold one of its visitor's three slots for ever. Its messages
    without an outcome end as 'stopped', with the reason in the run's events; True if it was ended."""
    model = delivery.model_for(experiment.params)
    marker = live.key(experiment.pk, "at_rest")
    if not model.consumed or not model.at_rest(connection, experiment.pk, experiment.params):
        connection.delete(marker)
        return False
    connection.set(marker, time.time(), nx=True, ex=live.TTL_SECONDS)
    if time.time() - float(connection.get(marker) or time.time()) < AT_REST_S:
        return False  # seen at rest once: a message may be between its acknowledgement and its outcome
    reason = "ended by the janitor: every message was delivered, but Redis lost the outcome of these (a restart?)"
    recorder = live.Recorder(experiment.pk, connection)
    settled = {int(job) for job in connection.hkeys(live.key(experiment.pk, "term"))}
    lost = [job for job in range(1, admitted_jobs(experiment.params) + 1) if job not in settled]
    recorder.stopped_before_start(lost, reason)
    connection.delete(live.key(experiment.pk, "run"))  # no consumer is working on any of them: they are at rest
    recorder.note("run_ended", detail=f"{reason}: {len(lost)} without an outcome")
    connection.hdel(delivery.ACTIVE, str(experiment.pk))
    if finish_if_done(experiment.pk, connection):
        return True
    summary = {**run_outcome.outcome(experiment), "ended_reason": reason}
    Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.RUNNING).update(
        status=Experiment.Status.STOPPED, finished_at=timezone.now(), summary=summary
    )
    rebalance(connection)
    return True


class KillRefused(Exception):
    """Killing that consumer is not something this run allows now; shown with HTTP 400."""


def experiment_kill_consumer(experiment: Experiment, name: str, *, limit_key: str = CLI_KEY) -> str:
    """Ask a live consumer to SIGKILL itself from the live view of a running stream or log run; returns
    what to tell the visitor."""
    model = delivery.model_for(experiment.params)
    if not model.consumed:
        raise KillRefused("This run is on RQ: it has no stream or log consumers. Crash a running job's worker instead.")
    if not experiment.is_running:
        raise KillRefused(
            f"Experiment #{experiment.pk} has ended; kill a consumer while a stream or log run is running."
        )
    refused = limits.take_consumer_kill(
        get_redis(), name=name, limit_key=limit_key, experiment_id=experiment.pk, request=True,
        session_s=delivery.SESSION_S,
    )  # fmt: skip
    if refused in ("gone", "last"):
        raise KillRefused(limits.kill_refused(refused, name))
    if refused:
        raise LimitExceeded(limits.kill_refused(refused, name))
    live.Recorder(experiment.pk).note("consumer_kill_requested", detail=f"you asked {name} to die (SIGKILL)")
    return (
        f"Consumer {name} will be killed (SIGKILL) within a second, or as soon as it finishes another run's "
        f"message: {model.kill_effect}. The pool restarts it a few seconds later."
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
