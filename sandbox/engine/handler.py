"""The lab's consumer: "charge order #k", with the experiment's faults injected on the way."""

import os
import signal
import time

from django.db import connection, transaction
from django.utils import timezone

from sandbox import workflows
from sandbox.engine import rq_storage
from sandbox.engine.fault_plan import FaultPlan
from sandbox.engine.live import Recorder, flag_key
from sandbox.models import LedgerEntry
from sandbox.workflows import handlers as workflow_handlers
from sandbox.workflows import priority

SLICE_SECONDS = 0.05
BEAT_EVERY_SECONDS = 1.0


_INSERT_CHARGE = (
    "INSERT INTO sandbox_ledgerentry (experiment_id, order_number, amount_cents, idempotency_key, job_id, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


class TransientError(Exception):
    """A failure worth retrying (the payment provider answered 503)."""


class PoisonMessage(Exception):
    """A message that can never succeed (its payload is malformed)."""


class CrashContained(Exception):
    """A crash the shared lab would not allow now (sandbox.engine.limits.take_consumer_kill): the delivery
    fails as a crash, but the consumer serving every visitor's runs lives on."""


class AttemptTimeout(Exception):
    """The consumer gave up on an attempt that outran its timeout (RQ raises its own JobTimeoutException)."""


def amount_cents(order_number: int) -> int:
    return 500 + (order_number * 37) % 9500


def _work(
    recorder: Recorder,
    *,
    job_id: str,
    seconds: float,
    crash_at: float | None,
    job: int,
    on_beat=None,
    beat_s: float = BEAT_EVERY_SECONDS,
    may_crash=None,
) -> str | None:
    """Sleep through the job's work in slices, honouring crash/stop requests; return 'stop' if asked.

    on_beat: called every beat_s while working (a stream consumer extends its lease there).
    may_crash: asked before this process SIGKILLs itself (a shared consumer asks the lab's kill budget);
    when it says no, the attempt fails as a contained crash instead."""
    redis = recorder.redis
    pid = os.getpid()
    start = time.monotonic()
    last_beat = start
    crash_flag, stop_flag = (
        flag_key(recorder.experiment_id, f"crash:{job}"),
        flag_key(recorder.experiment_id, f"stop:{job}"),
    )
    while True:
        elapsed = time.monotonic() - start
        if crash_at is not None and elapsed >= crash_at:
            _crash(recorder, job, may_crash, "crash_injected", "SIGKILL to own work-horse")
        if elapsed >= seconds:
            return None
        if time.monotonic() - last_beat >= beat_s:
            recorder.beat(job_id, pid)
            if on_beat is not None:
                on_beat()
            last_beat = time.monotonic()
        pipe = redis.pipeline()
        pipe.getdel(crash_flag)
        pipe.getdel(stop_flag)
        crash, stop = pipe.execute()
        if crash:
            _crash(recorder, job, may_crash, "crash_requested", "visitor pressed 'crash its worker': SIGKILL")
        if stop:
            return "stop"
        time.sleep(min(SLICE_SECONDS, max(0.0, seconds - elapsed)))


def _crash(recorder: Recorder, job: int, may_crash, event: str, detail: str) -> None:
    if may_crash is not None and (refused := may_crash()):
        recorder.note("crash_contained", job, detail=f"the consumer lives on: {refused}")
        raise CrashContained(f"order #{job}: crashed (contained: {refused})")
    recorder.note(event, job, detail=detail)
    os.kill(os.getpid(), signal.SIGKILL)


def charge(experiment_id: int, job: int, *, job_id: str, idempotent: bool) -> str:
    """The side effect. Returns charged, duplicate_suppressed or double_charge.

    One INSERT ... ON CONFLICT DO NOTHING (SQLite and PostgreSQL alike) rather than the ORM's
    create-and-catch: this runs once per job in a freshly forked work-horse, where every extra
    statement and savepoint is paid again.
    """
    key = f"order-{job}" if idempotent else None
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    # In one transaction (IMMEDIATE on SQLite: serialised), two deliveries cannot both look and see nothing.
    with transaction.atomic(), connection.cursor() as cursor:
        # Without a key nothing stops a second charge; look first only to report it as a double charge.
        already = not idempotent and LedgerEntry.objects.filter(experiment_id=experiment_id, order_number=job).exists()
        cursor.execute(_INSERT_CHARGE, [experiment_id, job, amount_cents(job), key, job_id, now])
        if cursor.rowcount == 0:
            return "duplicate_suppressed"
    return "double_charge" if already else "charged"


def process(
    recorder: Recorder,
    job: int,
    *,
    job_id: str,
    worker: str,
    run: str = "",
    timeout_s: float | None = None,
    on_beat=None,
    beat_s: float = BEAT_EVERY_SECONDS,
    redeliver=None,
    may_crash=None,
) -> str:
    """One delivery of one message. RQ enforces the timeout itself; the stream and log consumers pass
    timeout_s, a lease-extending on_beat, their own redeliver (the lost ack's second delivery) and may_crash,
    which returns why a crash must not kill the process now (or None to let it)."""
    experiment_id = recorder.experiment_id
    attempt = recorder.begin_attempt(job=job, job_id=job_id, pid=os.getpid(), worker=worker, run=run)
    if attempt is None:
        return "expired"  # the experiment's keys are gone (or are another run's): nothing to account for
    if attempt.stop_requested:
        recorder.stopped(job=job, job_id=job_id, attempt=attempt.number, reason="experiment stopped")
        return "stopped"
    n = attempt.number
    plan = FaultPlan.from_params(attempt.seed, attempt.params)
    crash_at = plan.crash_point_s(job, n) if plan.crashes(job, n) else None
    seconds = priority.work_seconds(attempt.params, job, plan.duration_s(job, n))
    timed_out = timeout_s is not None and seconds > timeout_s
    seconds = min(seconds, timeout_s) if timed_out else seconds
    worked = _work(
        recorder, job_id=job_id, seconds=seconds, crash_at=crash_at, job=job, on_beat=on_beat, beat_s=beat_s,
        may_crash=may_crash,
    )  # fmt: skip
    if worked == "stop":
        recorder.stopped(job=job, job_id=job_id, attempt=n, reason="visitor stopped the job")
        return "stopped"
    if timed_out:
        raise AttemptTimeout(f"order #{job}: attempt {n} outran its {timeout_s:g} s timeout")
    if plan.is_poison(job) and not attempt.consumer_fixed:
        raise PoisonMessage(f"order #{job}: payload fails schema validation (missing 'currency')")
    if plan.fails_transiently(job, n, attempt.since_start_s):
        raise TransientError(f"order #{job}: payment provider answered 503 on attempt {n}")
    if workflows.is_workflow(attempt.params):  # the request handler of a workflow family is the side effect
        outcome = workflow_handlers.handle(recorder, job, attempt=n, params=attempt.params, seed=attempt.seed)
    else:
        outcome = charge(experiment_id, job, job_id=job_id, idempotent=attempt.params["idempotency"] == "on")
    if recorder.succeeded(job=job, job_id=job_id, attempt=n, outcome=outcome) and not workflows.is_workflow(
        attempt.params
    ):
        recorder.applied_in_order(job, attempt.params)
    if plan.delivered_twice(job) and recorder.redeliver_once(job):
        # At-least-once delivery after a lost ack: the very same message is delivered again.
        if redeliver is None:
            rq_storage.redeliver(job_id, recorder.redis)
        else:
            redeliver()
    return outcome
