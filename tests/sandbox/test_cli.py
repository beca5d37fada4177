import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.engine.presets import DEFAULTS, PRESETS
from sandbox.params import ExperimentForm

BASE_DIR = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = {
    "preset", "requested", "enqueued", "rejected", "succeeded", "dead_lettered", "stopped", "attempts", "retries",
    "duplicates_delivered", "duplicates_suppressed", "double_charges", "p50_ms", "p95_ms", "elapsed_s", "slo_met",
}  # fmt: skip


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_cli_run_follows_the_experiment_and_prints_json_last(rq_workers, capsys):
    call_command(
        "experiment",
        "run",
        "spike",
        "--jobs",
        "12",
        "--set",
        "queue_cap=5",
        "--set",
        "duration_ms=30",
        "--seed",
        "3",
        "--json",
    )
    out = capsys.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["requested"] == 12
    assert summary["rejected"] == 7
    assert summary["succeeded"] == 5
    assert summary["finished"] is True
    assert "5/5 done" in out.err  # the progress bar's final line


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model", ["stream", "log"])
def test_cli_runs_the_stream_and_log_models_and_reports_their_numbers(rq_workers, capsys, model):
    call_command(
        "experiment", "run", "ordering", "--jobs", "12", "--set", f"model={model}", "--set", "duration_ms=30",
        "--seed", "3", "--json",
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == model
    assert summary.keys() >= SUMMARY_KEYS | {"redeliveries", "order_violations", "max_lag"}
    assert summary["succeeded"] + summary["dead_lettered"] == 12
    assert summary["redeliveries"] == summary["attempts"] - 12  # every delivery after a message's first
    assert summary["max_lag"] >= 1
    if model == "log":  # retries in place keep each customer's events in order
        assert summary["order_violations"] == 0


def test_cli_refuses_an_unknown_delivery_model():
    result = run_cli("run", "happy", "--set", "model=kafka")
    assert result.returncode == 2
    assert "model" in result.stderr


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "experiment", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BASE_DIR,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["run", "no-such-preset"],
        ["run", "happy", "--jobs", "abc"],
        ["run", "happy", "--set", "jobs=0"],
        ["run", "happy", "--set", "failure_rate=2"],
        ["run", "happy", "--set", "nonsense"],
        ["frobnicate"],
    ],
)
def test_cli_bad_arguments_are_a_usage_error_with_exit_2(args):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()


@pytest.mark.django_db
def test_cli_with_redis_stopped_says_so_instead_of_a_traceback(redis_control):
    redis_control.stop()
    with pytest.raises(CommandError, match="Redis is not answering"):
        call_command("experiment", "run", "happy", "--jobs", "1")


fields = {
    "jobs": st.one_of(st.integers(-10, 1000), st.text(max_size=5)),
    "failure_rate": st.one_of(st.floats(allow_nan=True), st.text(max_size=5)),
    "max_retries": st.one_of(st.integers(-5, 50), st.just("")),
    "backoff": st.sampled_from(["fixed", "exponential", "linear", ""]),
    "jitter": st.sampled_from(["none", "full", "equal", "decorrelated"]),
    "backoff_base_s": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just("x")),
    "backoff_cap_s": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just("")),
    "queue_cap": st.integers(-5, 10_000),
    "prediction": st.text(max_size=3000),
    "preset": st.sampled_from([*PRESETS, "evil", ""]),
}


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({}, optional=fields))
def test_experiment_form_never_raises_and_valid_means_within_bounds(data):
    form = ExperimentForm(
        data={**{k: str(v) for k, v in DEFAULTS.items()}, "preset": "happy", **{k: str(v) for k, v in data.items()}}
    )
    if form.is_valid():
        params = form.parameters()
        assert 1 <= params["jobs"] <= 500
        assert 0 <= params["failure_rate"] <= 1
        assert params["backoff_cap_s"] >= params["backoff_base_s"]
        assert params["backoff"] in {"fixed", "exponential"}
    else:
        assert form.errors


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_cli_json_and_the_live_view_show_the_same_outcome(rq_workers, capsys, client):
    import re

    from django.urls import reverse

    from sandbox.engine import outcome as run_outcome
    from sandbox.models import Experiment
    from tests.sandbox.helpers import anonymous_visitor

    call_command("experiment", "run", "poison", "--jobs", "3", "--set", "max_retries=1", "--set", "backoff_base_s=1",
                 "--set", "backoff_cap_s=1", "--set", "duration_ms=20", "--seed", "5", "--json")  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    experiment = Experiment.objects.get(pk=summary["id"])
    assert summary["dead_lettered"] == 3
    shown = run_outcome.outcome(experiment)
    assert {k: v for k, v in shown.items() if k != "expired"} == {
        k: v for k, v in summary.items() if k in shown and k != "expired"
    }

    # The page a visitor sees: hand the CLI's run to a browser visitor and read its counters panel.
    owner = anonymous_visitor(client)
    Experiment.objects.filter(pk=experiment.pk).update(**owner.owner())
    page = client.get(reverse("sandbox:detail", args=[experiment.pk])).content.decode()
    counters = {k: int(v) for k, v in re.findall(r'data-counter="(\w+)"><div class="n">(\d+)<', page)}
    assert counters, "no counters on the live view"
    for name, value in counters.items():
        if name in summary:
            assert value == summary[name], name
    assert {"requested", "succeeded", "dead_lettered", "attempts", "retries"} <= counters.keys()
