"""`saga`: reserve stock → charge → ship, orchestrated by the run's message job with its state in the database.

Message k is saga k. Its job is the orchestrator: it reads the saga's row, runs the next step (each step and
the row's new state commit in one transaction), and when a step fails for good (`step_fail_rate`, per saga
and step) it compensates the steps done so far, newest first. A compensation can fail transiently
(`compensation_fail_rate`, per saga, step and attempt): the orchestrator raises, RQ retries the job with
its backoff, and the next attempt resumes from the row — no step runs twice. A compensation that fails on
every attempt leaves the job in the DLQ with its saga still compensating: it needs a human. A death right
after a step commits (`commit_crash_rate`) is a SIGKILL of the work-horse; the retry resumes the same way.
"""

import time

from django.db import transaction
from django.db.models import Count, Q
from redis import Redis

from sandbox.engine import live
from sandbox.workflows.models import Saga, SagaStep
from sandbox.workflows.outbox import chance, die

STEPS = ("reserve", "charge", "ship")
UNDO = {"reserve": "release stock", "charge": "refund", "ship": "cancel shipment"}


class CompensationFailed(Exception):
    """Injected: a compensation's service answered 503 (transient: worth retrying)."""


def fails_for_good(params: dict, seed: int, saga: int, step: str) -> bool:
    return chance(seed, saga, step, "fails") < params["step_fail_rate"]


def compensation_fails(params: dict, seed: int, saga: int, step: str, attempt: int) -> bool:
    return chance(seed, saga, step, attempt, "undo") < params["compensation_fail_rate"]


def _log(experiment_id: int, saga: int, step: str, action: str, attempt: int) -> None:
    SagaStep.objects.create(
        experiment_id=experiment_id, saga=saga, step=step, action=action, attempt=attempt, at=time.time()
    )


def run_saga(recorder: live.Recorder, job: int, *, attempt: int, params: dict, seed: int) -> str:
    """Advance saga `job` as far as it goes on this attempt; 'charged' when completed, 'compensated' when undone."""
    experiment_id = recorder.experiment_id
    saga, _ = Saga.objects.get_or_create(experiment_id=experiment_id, number=job)
    crash = chance(seed, job, attempt, "commit-crash") < params["commit_crash_rate"]
    while saga.state == Saga.State.RUNNING:
        step = STEPS[saga.steps_done]
        with transaction.atomic():
            if fails_for_good(params, seed, job, step):
                _log(experiment_id, job, step, "fail", attempt)
                saga.state, saga.failed_step = Saga.State.COMPENSATING, step
            else:
                _log(experiment_id, job, step, "do", attempt)
                saga.steps_done += 1
                if saga.steps_done == len(STEPS):
                    saga.state = Saga.State.COMPLETED
            saga.save()
        if crash:
            die(recorder, job, f"after the saga's '{step}' committed")
    while saga.state == Saga.State.COMPENSATING:
        if saga.undone == saga.steps_done:
            saga.state = Saga.State.COMPENSATED
            saga.save(update_fields=["state"])
            break
        step = STEPS[saga.steps_done - saga.undone - 1]  # newest first
        if compensation_fails(params, seed, job, step, attempt):
            _log(experiment_id, job, step, "undo_failed", attempt)
            raise CompensationFailed(f"saga #{job}: '{UNDO[step]}' answered 503 on attempt {attempt}")
        with transaction.atomic():
            _log(experiment_id, job, step, "undo", attempt)
            saga.undone += 1
            saga.save(update_fields=["undone"])
    return "charged" if saga.state == Saga.State.COMPLETED else "compensated"


def counters(experiment_id: int, redis: Redis, dlq: set[int]) -> dict[str, int]:
    """completed, compensated, needs a human (in the DLQ mid-compensation), half done (neither), and the order."""
    sagas = list(Saga.objects.filter(experiment_id=experiment_id).values_list("number", "state"))
    stuck = {number for number, state in sagas if state in (Saga.State.RUNNING, Saga.State.COMPENSATING)}
    actions = SagaStep.objects.filter(experiment_id=experiment_id).aggregate(
        done=Count("id", filter=Q(action="do")),
        undone=Count("id", filter=Q(action="undo")),
        undo_failed=Count("id", filter=Q(action="undo_failed")),
    )
    return {
        "sagas": len(sagas),
        "completed": sum(1 for _, state in sagas if state == Saga.State.COMPLETED),
        "compensated": sum(1 for _, state in sagas if state == Saga.State.COMPENSATED),
        "needs_human": len(stuck & dlq),
        "half_done": len(stuck - dlq),
        "steps_done": actions["done"],
        "compensations_done": actions["undone"],
        "compensations_failed": actions["undo_failed"],
        "out_of_order_compensations": out_of_order(experiment_id),
    }


def out_of_order(experiment_id: int) -> int:
    """Sagas whose compensations did not run in exactly the reverse order of their steps."""
    history: dict[int, tuple[list[str], list[str]]] = {}
    for saga, step, action in (
        SagaStep.objects.filter(experiment_id=experiment_id, action__in=("do", "undo"))
        .order_by("id")
        .values_list("saga", "step", "action")
    ):
        done, undone = history.setdefault(saga, ([], []))
        (done if action == "do" else undone).append(step)
    return sum(1 for done, undone in history.values() if undone and undone != done[::-1][: len(undone)])


def timeline(experiment_id: int, limit: int) -> dict[int, list[dict]]:
    """Each saga's actions in order (the first `limit` sagas), for the live view's state machine lanes."""
    lanes: dict[int, list[dict]] = {}
    for saga, step, action, at in (
        SagaStep.objects.filter(experiment_id=experiment_id, saga__lte=limit)
        .order_by("id")
        .values_list("saga", "step", "action", "at")
    ):
        lanes.setdefault(saga, []).append({"step": step, "action": action, "at": at})
    return lanes
