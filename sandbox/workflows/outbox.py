"""`dual-write` and `outbox`: a handler that saves an order and announces "order placed", a relay, a consumer.

The same fault plan hits both presets, as a pure function of (seed, order, attempt):
- the process dies (SIGKILL) right after its transaction commits (`commit_crash_rate`);
- the transaction rolls back after the handler's writes (`rollback_rate`), as a failing later statement
  or COMMIT would.
Dual write publishes to the broker itself, either after the commit (`publish_at=on_commit`, Django's
`transaction.on_commit`: a death after the commit loses the event) or inside the transaction
(`in_transaction`: a rollback leaves a ghost, an event about an order that does not exist). The outbox
writes the event as a row in the order's own transaction; a relay (a real RQ job, sandbox.workflows.jobs)
claims unsent rows — `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, a lease taken in one IMMEDIATE
transaction on SQLite — publishes them and marks them sent. A relay killed between publishing and
marking (`relay_crash_rate`) leaves its rows unsent: the next pass publishes them again (duplicates),
which the consumer absorbs when it is idempotent (the `idempotency` parameter).

The broker is a Redis stream per run (the bus); the consumer records one WorkflowEffect per event.
"""

import os
import random
import signal
import time
import uuid

from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone
from redis import Redis

from sandbox.engine import live
from sandbox.workflows.models import OutboxMessage, WorkflowEffect, WorkflowOrder

BUS = "wf:bus"  # the broker: one Redis stream per run
CONSUMED = "wf:consumed"  # the consumer's last entry id on the bus
PASSES = "wf:pass"  # relay passes so far (the relay's fault plan is per pass)
RELAY_CRASHES = "wf:relay_crashes"
BATCH = 10  # rows one relay pass claims
LEASE_S = 2.0  # SQLite: how long a claimed row stays with a relay that may have died
MAX_RELAY_CRASHES = 3  # the relay job's retries outlast its injected deaths
OPEN = "wf_open"  # 1 while the relay or the consumer may still move (sandbox.engine.live: not finished)


class CommitFailed(Exception):
    """Injected: the order's transaction rolled back after the handler's writes (a later statement failed)."""


def chance(seed: int, *parts) -> float:
    return random.Random(":".join(str(p) for p in (seed, *parts))).random()


def faults(params: dict, seed: int, job: int, attempt: int) -> tuple[bool, bool]:
    """(dies after its commit, its transaction rolls back): the same for every workflow under one seed."""
    crash = chance(seed, job, attempt, "commit-crash") < params["commit_crash_rate"]
    rollback = not crash and chance(seed, job, attempt, "rollback") < params["rollback_rate"]
    return crash, rollback


def die(recorder: live.Recorder, job: int | None, where: str) -> None:
    recorder.note("crash_injected", job, detail=f"SIGKILL {where}")
    os.kill(os.getpid(), signal.SIGKILL)


def publish(redis: Redis, experiment_id: int, order: int, *, source: str, committed_at: float | None = None) -> None:
    """Put 'order placed' on the broker. committed_at: when its outbox row was written (the relay's lag)."""
    now = time.time()
    fields = {"order": order, "key": f"order-{order}", "t": f"{now:.3f}", "src": source}
    if committed_at is not None:
        fields["lag_ms"] = round((now - committed_at) * 1000)
    redis.xadd(live.key(experiment_id, BUS), fields)
    redis.expire(live.key(experiment_id, BUS), live.TTL_SECONDS)


def place_order(recorder: live.Recorder, job: int, *, attempt: int, params: dict, seed: int) -> str:
    """The request handler: save order #job and announce it, the way the run's workflow does."""
    experiment_id, redis = recorder.experiment_id, recorder.redis
    crash, rollback = faults(params, seed, job, attempt)
    outbox = params["workflow"] == "outbox"
    with transaction.atomic():
        if WorkflowOrder.objects.filter(experiment_id=experiment_id, order_number=job).exists():
            return "duplicate_suppressed"  # a retry finds the order placed and answers as before: nothing more
        WorkflowOrder.objects.create(experiment_id=experiment_id, order_number=job)
        if outbox:
            OutboxMessage.objects.create(experiment_id=experiment_id, order_number=job)
        elif params["publish_at"] == "in_transaction":
            publish(redis, experiment_id, job, source="handler")
        else:
            if crash:  # on_commit callbacks run in order, after the COMMIT: the process dies first
                transaction.on_commit(lambda: die(recorder, job, "after COMMIT, before the publish"))
            transaction.on_commit(lambda: publish(redis, experiment_id, job, source="handler"))
        if rollback:
            raise CommitFailed(f"order #{job}: the transaction rolled back after its writes (attempt {attempt})")
    if crash:
        die(recorder, job, "after COMMIT")
    return "charged"


# ---------------------------------------------------------------- the relay and the consumer


def relay_pass(recorder: live.Recorder, *, params: dict, seed: int) -> int:
    """Claim up to BATCH unsent outbox rows, publish them, mark them sent; returns how many were published."""
    experiment_id, redis = recorder.experiment_id, recorder.redis
    pass_no = redis.incr(live.key(experiment_id, PASSES))
    redis.expire(live.key(experiment_id, PASSES), live.TTL_SECONDS)
    crash = chance(seed, "relay", pass_no) < params["relay_crash_rate"]
    unsent = OutboxMessage.objects.filter(experiment_id=experiment_id, sent_at__isnull=True).order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        # PostgreSQL: rows another relay holds are skipped, not waited for; a relay that dies mid-way
        # takes its locks with its connection and the rows are unsent again at once.
        with transaction.atomic():
            rows = list(unsent.select_for_update(skip_locked=True)[:BATCH])
            if not rows:
                return 0
            for row in rows:
                publish(redis, experiment_id, row.order_number, source="relay", committed_at=row.created_at.timestamp())
            if crash and _may_crash(redis, experiment_id):
                die(recorder, None, "in the relay, after publishing and before marking the rows sent")
            OutboxMessage.objects.filter(pk__in=[row.pk for row in rows]).update(sent_at=timezone.now())
        return len(rows)
    # SQLite has no row locks: claim rows with a lease, in one IMMEDIATE (write-locked) transaction, so
    # two relays never claim the same row; a relay that dies leaves the lease to run out (LEASE_S).
    owner, now = uuid.uuid4().hex, time.time()
    with transaction.atomic():
        free = unsent.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        ids = list(free.values_list("pk", flat=True)[:BATCH])
        OutboxMessage.objects.filter(pk__in=ids).update(lease_until=now + LEASE_S, lease_owner=owner)
    rows = list(OutboxMessage.objects.filter(pk__in=ids, lease_owner=owner).order_by("id"))
    for row in rows:
        publish(redis, experiment_id, row.order_number, source="relay", committed_at=row.created_at.timestamp())
    if rows and crash and _may_crash(redis, experiment_id):
        die(recorder, None, "in the relay, after publishing and before marking the rows sent")
    OutboxMessage.objects.filter(pk__in=ids, lease_owner=owner).update(sent_at=timezone.now(), lease_until=None)
    return len(rows)


def _may_crash(redis: Redis, experiment_id: int) -> bool:
    """At most MAX_RELAY_CRASHES deaths per run, so the relay's retries always outlast them."""
    crashes = redis.incr(live.key(experiment_id, RELAY_CRASHES))
    redis.expire(live.key(experiment_id, RELAY_CRASHES), live.TTL_SECONDS)
    return crashes <= MAX_RELAY_CRASHES


def consume_pass(recorder: live.Recorder, *, params: dict, limit: int = 200) -> int:
    """The downstream consumer: one effect per event read from the bus; an idempotent one keys it by event."""
    experiment_id, redis = recorder.experiment_id, recorder.redis
    last = (redis.get(live.key(experiment_id, CONSUMED)) or b"0-0").decode()
    entries = redis.xrange(live.key(experiment_id, BUS), min=f"({last}", count=limit)
    idempotent = params["idempotency"] == "on"
    for entry_id, fields in entries:
        event_key = fields[b"key"].decode()
        WorkflowEffect.objects.bulk_create(
            [
                WorkflowEffect(
                    experiment_id=experiment_id, event_key=event_key, idempotency_key=event_key if idempotent else None
                )
            ],
            ignore_conflicts=True,
        )
        redis.set(live.key(experiment_id, CONSUMED), entry_id, ex=live.TTL_SECONDS)
    return len(entries)


# ---------------------------------------------------------------- what happened


def counters(experiment_id: int, redis: Redis) -> dict[str, int]:
    """lost, ghosts, duplicates, double effects and the relay's lag, from the database and the broker."""
    orders = set(WorkflowOrder.objects.filter(experiment_id=experiment_id).values_list("order_number", flat=True))
    pending = set(
        OutboxMessage.objects.filter(experiment_id=experiment_id, sent_at__isnull=True).values_list(
            "order_number", flat=True
        )
    )
    entries = redis.xrange(live.key(experiment_id, BUS))
    published = [int(fields[b"order"]) for _, fields in entries]
    lags = sorted(int(fields[b"lag_ms"]) for _, fields in entries if b"lag_ms" in fields)
    effects = WorkflowEffect.objects.filter(experiment_id=experiment_id).aggregate(
        rows=Count("id"), events=Count("event_key", distinct=True)
    )
    return {
        "orders": len(orders),
        "events_published": len(published),
        "lost": len(orders - set(published) - pending),
        "unsent": len(pending),
        "ghosts": len(set(published) - orders),
        "duplicates": len(published) - len(set(published)),
        "double_effects": effects["rows"] - effects["events"],
        "relay_lag_p95_ms": lags[min(len(lags) - 1, int(0.95 * len(lags)))] if lags else 0,
        "relay_lag_max_ms": lags[-1] if lags else 0,
    }


def drained(experiment_id: int, redis: Redis) -> bool:
    """Nothing left for the relay or the consumer: no unsent row, every bus entry consumed."""
    if OutboxMessage.objects.filter(experiment_id=experiment_id, sent_at__isnull=True).exists():
        return False
    last = redis.xrevrange(live.key(experiment_id, BUS), count=1)
    consumed = redis.get(live.key(experiment_id, CONSUMED))
    return not last or (consumed is not None and consumed == last[0][0])
