"""`fan-in`: message k fans out `fan_out` children as real RQ jobs; the batch's final step must run exactly once,
and only after every child is done.

Children fail transiently (`child_fail_rate`, retried by RQ) and are sometimes delivered twice
(`child_duplicate_rate`: the same job id pushed onto the queue again, a lost ack). Two ways to close a batch:
- `naive`: each child adds one to a counter and, if the counter reached the batch size, enqueues the final.
  A duplicate delivery counts twice (the final runs early, and again), and two children finishing together
  can both see the last count (the "last one closes the batch" race).
- `atomic` (the site's design): in one transaction a child inserts its completion row (unique per child, so a
  duplicate changes nothing) and only then decrements `remaining`; the child that takes it to zero closes
  the batch with a compare-and-set (`closed_at IS NULL`), so exactly one enqueues the final.
"""

import time
import uuid

from django.db import connection, transaction
from django.db.models import Count, F
from redis import Redis
from rq import Retry
from rq.job import Callback
from rq.rate_limit import RateLimit

from sandbox.engine import live, rq_storage
from sandbox.workflows.models import FanInBatch, FanInChild, FanInFinal
from sandbox.workflows.outbox import chance

DUPLICATED = "wf:dup"  # children already delivered a second time
RATE_KEY = "wf:limit"  # the run's visitor's RQ rate-limit key: the children run in their fair share
CHILD = "sandbox.workflows.jobs.fan_in_child"
FINAL = "sandbox.workflows.jobs.fan_in_final"

_INSERT_CHILD = (
    "INSERT INTO sandbox_faninchild (experiment_id, batch, child, status, at) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT DO NOTHING"
)


class ChildFailed(Exception):
    """Injected: a child's work answered 503 (transient: RQ retries it)."""


def child_job_id(experiment_id: int, batch: int, child: int) -> str:
    return f"lab-fi{experiment_id}-{batch}-{child}"


def _options(rate_key: str, redis: Redis, timeout_s: int) -> dict:
    slots = rq_storage.rate_limit_concurrency(redis, rate_key) or 1
    return dict(
        job_timeout=timeout_s,
        result_ttl=60,
        failure_ttl=live.TTL_SECONDS,
        ttl=live.JOB_TTL_SECONDS,
        rate_limit=RateLimit(key=rate_key, concurrency=slots),
    )


def start_batch(recorder: live.Recorder, job: int, *, params: dict) -> str:
    """The parent: open batch `job` and fan out its children (a retry finds the batch open and does nothing)."""
    experiment_id, redis = recorder.experiment_id, recorder.redis
    rate_key = (redis.get(live.key(experiment_id, RATE_KEY)) or b"lab-v-none").decode()
    _, created = FanInBatch.objects.get_or_create(
        experiment_id=experiment_id, number=job, defaults={"size": params["fan_out"], "remaining": params["fan_out"]}
    )
    if not created:
        return "duplicate_suppressed"
    queue = rq_storage.lab_queue(redis)
    intervals = [params["backoff_base_s"]] * params["max_retries"]
    for child in range(1, params["fan_out"] + 1):
        queue.enqueue(
            CHILD,
            args=(experiment_id, rate_key, job, child),
            job_id=child_job_id(experiment_id, job, child),
            retry=Retry(max=params["max_retries"], interval=intervals) if params["max_retries"] else None,
            on_failure=Callback("sandbox.workflows.jobs.fan_in_child_failed"),
            **_options(rate_key, redis, params["timeout_s"]),
        )
    return "charged"


def run_child(
    recorder: live.Recorder, *, params: dict, seed: int, rate_key: str, batch: int, child: int, attempt: int
) -> str:
    """One delivery of one child: its work, then its part in closing the batch."""
    experiment_id, redis = recorder.experiment_id, recorder.redis
    redis.hincrby(live.key(experiment_id, "c"), "child_runs", 1)
    if redis.exists(live.flag_key(experiment_id, "stop")):
        return "stopped"
    time.sleep(params["duration_ms"] / 1000)
    if chance(seed, batch, child, attempt, "child-fails") < params["child_fail_rate"]:
        raise ChildFailed(f"batch #{batch} child {child}: 503 on attempt {attempt}")
    counted = _count_naively if params["fan_in"] == "naive" else _count_atomically
    first, closes = counted(experiment_id, batch, child)
    if not first:
        redis.hincrby(live.key(experiment_id, "c"), "child_duplicates_seen", 1)
    if closes:
        rq_storage.lab_queue(redis).enqueue(
            FINAL,
            args=(experiment_id, batch),
            job_id=f"lab-fi{experiment_id}-{batch}-final-{uuid.uuid4().hex[:8]}",
            **_options(rate_key, redis, params["timeout_s"]),
        )
        redis.hincrby(live.key(experiment_id, "c"), "finals_enqueued", 1)
    duplicate = chance(seed, batch, child, "child-twice") < params["child_duplicate_rate"]
    if duplicate and redis.hsetnx(live.key(experiment_id, DUPLICATED), f"{batch}:{child}", 1):
        redis.expire(live.key(experiment_id, DUPLICATED), live.TTL_SECONDS)
        redis.hincrby(live.key(experiment_id, "c"), "child_redelivered", 1)
        rq_storage.redeliver(child_job_id(experiment_id, batch, child), redis)  # a lost ack: delivered again
    return "done"


def _count_naively(experiment_id: int, batch: int, child: int) -> tuple[bool, bool]:
    """Add one, read the count back, close if it reached the size: every delivery counts.
    Returns (first delivery of this child, closes the batch)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_INSERT_CHILD, [experiment_id, batch, child, "done", time.time()])
        first = cursor.rowcount == 1
    FanInBatch.objects.filter(experiment_id=experiment_id, number=batch).update(done_count=F("done_count") + 1)
    row = FanInBatch.objects.get(experiment_id=experiment_id, number=batch)
    return first, row.done_count >= row.size


def _count_atomically(experiment_id: int, batch: int, child: int) -> tuple[bool, bool]:
    """Record the child once, count it once, and let exactly one child close the batch."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_INSERT_CHILD, [experiment_id, batch, child, "done", time.time()])
        if cursor.rowcount == 0:
            return False, False  # a second delivery of a child already counted
        FanInBatch.objects.filter(experiment_id=experiment_id, number=batch).update(remaining=F("remaining") - 1)
        closed = FanInBatch.objects.filter(
            experiment_id=experiment_id, number=batch, remaining=0, closed_at__isnull=True
        ).update(closed_at=time.time())
    return True, closed == 1


def child_dead(experiment_id: int, batch: int, child: int) -> None:
    """A child used its whole retry budget: the batch cannot close (never early): it needs a human."""
    FanInChild.objects.bulk_create(
        [FanInChild(experiment_id=experiment_id, batch=batch, child=child, status="dead", at=time.time())],
        ignore_conflicts=True,
    )


def run_final(experiment_id: int, batch: int) -> None:
    """The batch's final step: record when it ran and whether any child was still not done."""
    size = FanInBatch.objects.filter(experiment_id=experiment_id, number=batch).values_list("size", flat=True).first()
    done = FanInChild.objects.filter(experiment_id=experiment_id, batch=batch, status="done").count()
    FanInFinal.objects.create(experiment_id=experiment_id, batch=batch, at=time.time(), early=done < (size or 0))


# Kept by the children themselves in the live counters (HINCRBY): read, never written back.
CHILD_COUNTERS = ("child_runs", "finals_enqueued", "child_redelivered", "child_duplicates_seen")


def counters(experiment_id: int, redis: Redis) -> dict[str, int]:
    """The batches' outcome from the database; child_deliveries copies the children's own count."""
    batches = FanInBatch.objects.filter(experiment_id=experiment_id)
    children = FanInChild.objects.filter(experiment_id=experiment_id)
    finals = FanInFinal.objects.filter(experiment_id=experiment_id)
    per_batch = finals.values("batch").annotate(n=Count("id"))
    runs = int(redis.hget(live.key(experiment_id, "c"), "child_runs") or 0)
    return {
        "batches": batches.count(),
        "children": sum(batches.values_list("size", flat=True)),
        "children_done": children.filter(status="done").count(),
        "children_dead": children.filter(status="dead").count(),
        "child_deliveries": runs,
        "final_runs": finals.count(),
        "early_finals": finals.filter(early=True).count(),
        "batches_finalized_twice": sum(1 for row in per_batch if row["n"] > 1),
        "batches_stuck": children.filter(status="dead").values("batch").distinct().count(),
    }


def drained(experiment_id: int, redis: Redis) -> bool:
    """Every child has an outcome and every final enqueued has run."""
    counts = counters(experiment_id, redis)
    _, enqueued, redelivered, seen = (int(v or 0) for v in redis.hmget(live.key(experiment_id, "c"), *CHILD_COUNTERS))
    return (
        counts["children_done"] + counts["children_dead"] >= counts["children"]
        and counts["final_runs"] >= enqueued
        and seen >= redelivered
    )
