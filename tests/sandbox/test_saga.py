"""The saga family (sandbox.workflows.saga): every saga ends completed, fully compensated newest step first,
or in the DLQ needing a human — never half-done — in process and on the real pool under random faults."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from sandbox.engine import live
from sandbox.models import Experiment
from sandbox.workflows import saga
from sandbox.workflows.models import Saga, SagaStep
from tests.conftest import wait_for
from tests.sandbox.helpers import anonymous_visitor, start, wait_finished

FAST = {"backoff_base_s": 1, "backoff_cap_s": 1, "arrival_per_s": 20.0}


def planned(experiment: Experiment) -> dict[int, str | None]:
    """Each saga's step that fails for good (None: it completes), from the fault plan."""
    params, seed = experiment.params, experiment.seed
    return {
        n: next((s for s in saga.STEPS if saga.fails_for_good(params, seed, n, s)), None)
        for n in range(1, params["jobs"] + 1)
    }


def needs_human(experiment: Experiment) -> set[int]:
    """Sagas whose compensation fails on every attempt of its budget, from the fault plan."""
    params, seed, tries = experiment.params, experiment.seed, experiment.params["max_retries"] + 1
    stuck = set()
    for n, failed in planned(experiment).items():
        if failed is None:
            continue
        to_undo = list(saga.STEPS[: saga.STEPS.index(failed)])[::-1]
        attempt = 1
        for step in to_undo:
            while attempt <= tries and saga.compensation_fails(params, seed, n, step, attempt):
                attempt += 1
            if attempt > tries:
                stuck.add(n)
                break
    return stuck


def assert_sagas_account(experiment: Experiment, state: live.LiveState, *, exact: bool = True) -> dict:
    """exact: no deaths, so the fault plan alone says which saga ends how (a death spends an attempt)."""
    c = state.counters
    assert c["enqueued"] == c["succeeded"] + c["dead_lettered"] + c["stopped"]
    # The job that ends a run writes the row just after the record; on the real pool a reader can fall between.
    wait_for(lambda: Experiment.objects.filter(pk=experiment.pk, status="finished").exists(), 15, message="the row")
    experiment.refresh_from_db()
    summary = experiment.summary
    plan = planned(experiment)
    stuck = needs_human(experiment)
    assert summary["half_done"] == 0
    assert summary["out_of_order_compensations"] == 0
    assert summary["needs_human"] == c["dead_lettered"]
    if exact:
        assert summary["completed"] == sum(1 for failed in plan.values() if failed is None)
        assert summary["needs_human"] == len(stuck)
        assert summary["compensated"] == len(plan) - summary["completed"] - len(stuck)
    assert summary["completed"] + summary["compensated"] + summary["needs_human"] == summary["sagas"] == c["enqueued"]
    for row in Saga.objects.filter(experiment=experiment):  # the database says the same, saga by saga
        steps = list(SagaStep.objects.filter(experiment=experiment, saga=row.number).order_by("id"))
        done = [s.step for s in steps if s.action == "do"]
        undone = [s.step for s in steps if s.action == "undo"]
        assert len(done) == len(set(done))  # a retry resumed: no step ran twice
        if row.state == Saga.State.COMPLETED:
            assert done == list(saga.STEPS)
        elif row.state == Saga.State.COMPENSATED:
            assert undone == done[::-1]
        else:
            assert row.number in state.dlq
            assert row.number in stuck or not exact
    return summary


@pytest.mark.parametrize("seed", [3, 26])
def test_every_saga_completes_or_is_compensated_in_reverse_or_waits_for_a_human(lab_engine, seed):
    experiment = start("saga", seed=seed, jobs=30, step_fail_rate=0.3, compensation_fail_rate=0.6, **FAST)
    state = lab_engine.finish(experiment)
    summary = assert_sagas_account(experiment, state)
    assert summary["compensated"] > 0  # the faults really happened
    assert summary["compensations_failed"] > 0


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_sagas_survive_their_orchestrator_being_killed_mid_saga(rq_workers):
    experiment = start(
        "saga", seed=26, jobs=20, step_fail_rate=0.3, compensation_fail_rate=0.5, commit_crash_rate=0.2, max_retries=3,
        **FAST,
    )  # fmt: skip
    state = wait_finished(experiment, 120)
    assert_sagas_account(experiment, state, exact=False)
    assert state.counters["crashes"] > 0  # work-horses were SIGKILLed after a step committed


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_cli_json_reports_the_saga_counters(rq_workers, capsys):
    call_command("experiment", "run", "saga", "--jobs", "12", "--seed", "3", "--json")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in ("enqueued", "succeeded", "dead_lettered", "stopped", "completed", "compensated", "needs_human",
                 "half_done"):  # fmt: skip
        assert name in summary, name
    assert summary["half_done"] == 0
    assert summary["finished"] is True
    assert summary["completed"] + summary["compensated"] + summary["needs_human"] == summary["enqueued"] == 12


def test_the_live_view_draws_each_sagas_state_machine_and_explains_the_arithmetic(lab_engine, client):
    owner = anonymous_visitor(client)
    experiment = start("saga", owner=owner, seed=3, jobs=8, step_fail_rate=0.4, compensation_fail_rate=0.5, **FAST)
    lab_engine.finish(experiment)
    response = client.get(reverse("sandbox:detail", args=[experiment.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Each saga&#x27;s state machine" in body or "Each saga's state machine" in body
    assert 'class="chart saga-lanes"' in body
    assert "Never half-done" in body
    assert 'data-counter="half_done"' in body
