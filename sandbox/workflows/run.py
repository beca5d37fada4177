"""A workflow run's background half: the tick (relay pass, consumer pass, a pipeline's queue sample, counters) and
when the run may end.

The run's record stays open (live counter `wf_open` = 1, which sandbox.engine.live's "finished" checks)
until every request has ended and the relay and the consumer have nothing left, or the run was stopped,
or the tick ran WORKFLOW_TICKS times (sandbox.engine.budget charges the run for them).
"""

import json
from datetime import timedelta

from redis import Redis
from rq import Retry
from rq.rate_limit import RateLimit

from prepsite.redis_conn import get_redis
from sandbox.engine import fairshare, live, rq_storage
from sandbox.engine.budget import WORKFLOW_TICK_S, WORKFLOW_TICKS
from sandbox.workflows import fanin, is_workflow, outbox, pipeline, priority, saga

__all__ = ["admit", "enqueue_tick", "is_workflow", "tick", "tick_job_id"]

TICK_EVERY_S = 1  # RQ's scheduler scores in whole seconds: the relay polls once a second
ENTRY_POINT = "sandbox.workflows.jobs.tick"


def tick_job_id(experiment_id: int, n: int) -> str:
    """Not a lab-E-k message id: the engine's per-message accounting never sees the relay."""
    return f"lab-wf{experiment_id}-{n}"


def admit(experiment_id: int, limit_key: str, run: str) -> None:
    """Open the run's workflow and schedule its first tick."""
    redis = get_redis()
    redis.hset(live.key(experiment_id, "c"), outbox.OPEN, 1)
    params, _ = context(redis, experiment_id) or ({}, 0)
    if params.get("workflow") == "pipeline":  # the stages count with HINCRBY; a run that never sheds shows 0
        redis.hset(live.key(experiment_id, "c"), mapping=dict.fromkeys(pipeline.STAGE_COUNTERS, 0))
    redis.set(live.key(experiment_id, fanin.RATE_KEY), fairshare.rate_key(limit_key), ex=live.TTL_SECONDS)
    enqueue_tick(redis, experiment_id, limit_key, run, 1)


def enqueue_tick(redis: Redis, experiment_id: int, limit_key: str, run: str, n: int) -> None:
    slots = fairshare.granted(limit_key, redis) or 1
    rq_storage.lab_queue(redis).enqueue_in(
        timedelta(seconds=TICK_EVERY_S),
        ENTRY_POINT,
        args=(experiment_id, limit_key, run, n),
        job_id=tick_job_id(experiment_id, n),
        job_timeout=max(5, round(WORKFLOW_TICK_S * 25)),
        result_ttl=60,
        failure_ttl=live.TTL_SECONDS,
        ttl=live.JOB_TTL_SECONDS,
        # The relay's injected deaths SIGKILL this job's work-horse; RQ's retry is the relay restarting.
        retry=Retry(max=outbox.MAX_RELAY_CRASHES + 1, interval=1),
        rate_limit=RateLimit(key=fairshare.rate_key(limit_key), concurrency=slots),
    )


def context(redis: Redis, experiment_id: int) -> tuple[dict, int] | None:
    raw = redis.get(live.key(experiment_id, "params"))
    if raw is None:
        return None
    stored = json.loads(raw)
    return stored["params"], stored["seed"]


def requests_done(redis: Redis, experiment_id: int) -> bool:
    """Every admitted request has ended (the engine's own definition, without the workflow's part)."""
    pipe = redis.pipeline()
    pipe.hmget(
        live.key(experiment_id, "c"),
        "enqueued", "succeeded", "dead_lettered", "stopped", "duplicates_delivered", "late_outcomes",
    )  # fmt: skip
    pipe.hlen(live.key(experiment_id, "run"))
    raw, running = pipe.execute()
    if raw[0] is None:
        return False  # not admitted yet: Recorder.admitted writes "enqueued" (the finish check reads it so too)
    enqueued, succeeded, dead, stopped, duplicates, late = (int(v or 0) for v in raw)
    return enqueued == succeeded + dead + stopped and duplicates <= late and running == 0


def tick(recorder: live.Recorder, *, limit_key: str, run: str, n: int) -> bool:
    """One pass of the relay (outbox only) and the consumer; True when the workflow has settled."""
    redis, experiment_id = recorder.redis, recorder.experiment_id
    found = context(redis, experiment_id)
    if found is None:
        return True  # the record expired: nothing left to account for
    params, seed = found
    stopping = bool(redis.exists(live.flag_key(experiment_id, "stop")))
    done = requests_done(redis, experiment_id)
    if params["workflow"] == "fan_in":
        drained = fanin.drained(experiment_id, redis)
        counts = fanin.counters(experiment_id, redis)
    elif params["workflow"] == "pipeline":
        pipeline.sample(redis, experiment_id)
        drained = pipeline.drained(experiment_id, redis)
        counts = pipeline.counters(experiment_id, redis)
    elif params["workflow"] == "priority":  # nothing of its own to drain: the engine's jobs are the whole run
        drained = True
        counts = priority.counters(experiment_id, redis, params)
    elif params["workflow"] == "saga":  # the orchestrator is the message job itself: only count here
        drained = True
        counts = saga.counters(experiment_id, redis, set(live.read(experiment_id, events=1, connection=redis).dlq))
    else:
        if params["workflow"] == "outbox" and not stopping:
            while outbox.relay_pass(recorder, params=params, seed=seed) == outbox.BATCH:
                pass  # a full batch: there may be more
        outbox.consume_pass(recorder, params=params)
        drained = outbox.drained(experiment_id, redis)
        counts = outbox.counters(experiment_id, redis)
    settled = (done and drained) or stopping or n >= WORKFLOW_TICKS
    redis.hset(live.key(experiment_id, "c"), mapping=counts)
    if settled:
        redis.hset(live.key(experiment_id, "c"), outbox.OPEN, 0)
        recorder.note("workflow_settled", detail="relay and consumer have nothing left" if done else "stopped")
        return True
    enqueue_tick(redis, experiment_id, limit_key, run, n + 1)
    return False
