"""Numeric predictions per preset, and the experiment form's parameters in words."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.engine.presets import DEFAULTS, PRESETS
from sandbox.liveview import predictions
from sandbox.liveview.predictions import Prediction, PredictionForm, compare, fields_for, observed
from sandbox.models import Experiment
from sandbox.params import FIELD_GROUPS, ExperimentForm, preset_overrides

# ---------------------------------------------------------------- which numbers each preset asks for


def test_every_preset_asks_for_a_few_numbers_in_plain_words():
    for name in PRESETS:
        fields = fields_for(name)
        assert 1 <= len(fields) <= 3, name
        for prediction in fields:
            assert isinstance(prediction, Prediction)
            assert prediction.label[0].isupper()
            assert "_" not in prediction.label
            assert prediction.unit
            assert prediction.min_value < prediction.max_value


def test_predictions_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        fields_for("poison")[0].key = "x"


@pytest.mark.parametrize(
    ("preset", "keys"),
    [
        ("poison", ["dead_lettered", "attempts_per_job"]),
        ("duplicates", ["double_charges"]),
        ("spike", ["rejected"]),
        ("slow-consumer", ["peak_depth", "drain_s"]),
        ("flaky", ["dead_lettered", "retries"]),
        ("retry-storm", ["retry_peak", "dead_lettered"]),
        ("timeout", ["dead_lettered", "drain_s"]),
        ("crash", ["double_charges", "succeeded"]),
        ("happy", ["drain_s"]),
    ],
)
def test_each_preset_asks_for_the_numbers_that_matter(preset, keys):
    assert [p.key for p in fields_for(preset)] == keys


def test_an_unknown_preset_asks_for_nothing():
    assert fields_for("nope") == []
    form = PredictionForm("nope", data={})
    assert form.is_valid()
    assert form.predictions() == {}


# ---------------------------------------------------------------- the form


def test_blank_predictions_are_allowed():
    form = PredictionForm("slow-consumer", data={"predict-peak_depth": "", "predict-drain_s": ""})
    assert form.is_valid(), form.errors
    assert form.predictions() == {}


def test_predictions_are_read_with_the_prefix_and_typed():
    form = PredictionForm("poison", data={"predict-dead_lettered": "12", "predict-attempts_per_job": "4.5"})
    assert form.is_valid(), form.errors
    assert form.predictions() == {"dead_lettered": 12, "attempts_per_job": 4.5}
    assert isinstance(form.predictions()["dead_lettered"], int)
    assert form["dead_lettered"].html_name == "predict-dead_lettered"
    assert form.fields["dead_lettered"].label == "Jobs in the DLQ at the end"


@pytest.mark.parametrize(
    "bad", ["twelve", "nan", "NaN", "inf", "-inf", "1e400", "9" * 5000, "-1", "501", "12.5", "0x10", "1,5"]
)
def test_bad_predictions_are_errors_never_exceptions(bad):
    form = PredictionForm("poison", data={"predict-dead_lettered": bad})
    assert not form.is_valid()
    assert "dead_lettered" in form.errors


@pytest.mark.parametrize("bad", ["nan", "inf", "1e400", "51", "-0.5", "four"])
def test_bad_decimal_predictions_are_errors(bad):
    form = PredictionForm("poison", data={"predict-attempts_per_job": bad})
    assert not form.is_valid()
    assert "attempts_per_job" in form.errors


@settings(max_examples=100, deadline=None)
@given(
    preset=st.sampled_from([*PRESETS, "nope"]),
    values=st.dictionaries(
        st.sampled_from(["dead_lettered", "attempts_per_job", "drain_s", "peak_depth", "retry_peak", "rejected"]),
        st.one_of(st.text(max_size=8), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**30), 10**30)),
    ),
)
def test_fuzzed_predictions_never_raise_and_valid_means_within_bounds(preset, values):
    form = PredictionForm(preset, data={f"predict-{k}": str(v) for k, v in values.items()})
    if form.is_valid():
        bounds = {p.key: p for p in fields_for(preset)}
        for key, value in form.predictions().items():
            assert bounds[key].min_value <= value <= bounds[key].max_value
    else:
        assert form.errors


# ---------------------------------------------------------------- observed and compared

OUTCOME = {
    "requested": 12,
    "enqueued": 12,
    "succeeded": 0,
    "dead_lettered": 12,
    "rejected": 0,
    "double_charges": 0,
    "attempts": 48,
    "p50_ms": 7000.0,
    "p95_ms": 14000.0,
}


def test_observed_reads_counters_and_extras():
    extras = {"peak_depth": 31, "drain_s": 13, "retry_peak": 40}
    assert observed("poison", OUTCOME, extras) == {"dead_lettered": 12, "attempts_per_job": 4.0}
    assert observed("slow-consumer", OUTCOME, extras) == {"peak_depth": 31, "drain_s": 13}
    assert observed("retry-storm", OUTCOME, extras) == {"retry_peak": 40, "dead_lettered": 12}
    assert observed("spike", {**OUTCOME, "rejected": 150}, extras) == {"rejected": 150}


def test_observed_is_none_where_the_run_cannot_tell():
    assert observed("slow-consumer", {}, {"peak_depth": None, "drain_s": None, "retry_peak": None}) == {
        "peak_depth": None,
        "drain_s": None,
    }
    assert observed("poison", {"enqueued": 0, "attempts": 0}, {}) == {"dead_lettered": None, "attempts_per_job": None}


def test_compare_judges_each_prediction():
    rows = compare(
        "slow-consumer",
        {"peak_depth": 30, "drain_s": 10},
        {"peak_depth": 30, "drain_s": 13},
    )
    assert rows == [
        {
            "key": "peak_depth",
            "label": "Most jobs waiting in the queue at once",
            "unit": "jobs",
            "predicted": 30,
            "observed": 30,
            "off": 0,
            "verdict": "spot on",
        },
        {
            "key": "drain_s",
            "label": "Seconds from the first arrival until the last job is done",
            "unit": "s",
            "predicted": 10,
            "observed": 13,
            "off": 3,
            "verdict": "off",  # 3 s off 13 is 23%
        },
    ]


@pytest.mark.parametrize(
    ("predicted", "seen", "verdict", "off"),
    [
        (12, 12, "spot on", 0),
        (4, 4.0, "spot on", 0),
        (10, 12, "close", 2),  # within 20% of what happened
        (0, 1, "close", 1),  # within one
        (2, 0, "off", -2),
        (100, 120, "close", 20),
        (100, 130, "off", 30),
        (3.5, 4.0, "close", 0.5),
        (None, 12, "no prediction", None),
        (12, None, "not observed", None),
    ],
)
def test_verdicts(predicted, seen, verdict, off):
    (row,) = compare("spike", {"rejected": predicted}, {"rejected": seen})
    assert row["verdict"] == verdict
    assert row["off"] == off


def test_compare_ignores_garbage_in_stored_predictions():
    rows = compare("poison", {"dead_lettered": "lots", "attempts_per_job": float("nan")}, {"dead_lettered": 12})
    assert [r["verdict"] for r in rows] == ["no prediction", "no prediction"]


@pytest.mark.django_db
def test_experiments_keep_numeric_predictions_beside_the_free_text_one():
    experiment = Experiment.objects.create(preset="poison", params={}, seed=1, prediction="all of them")
    assert experiment.predicted == {}
    form = PredictionForm("poison", data={"predict-dead_lettered": "12"})
    assert form.is_valid()
    experiment.predicted = form.predictions()
    experiment.save()
    experiment.refresh_from_db()
    assert experiment.predicted == {"dead_lettered": 12}
    assert experiment.prediction == "all of them"


def test_the_close_band_is_one_definition():
    assert predictions.CLOSE_SHARE == 0.2
    assert predictions.CLOSE_ABSOLUTE == 1


# ---------------------------------------------------------------- the experiment form in words


def test_field_groups_cover_every_parameter_and_the_seed_exactly_once():
    named = [name for _, names in FIELD_GROUPS for name in names]
    assert len(named) == len(set(named))
    assert set(named) == {*DEFAULTS, "seed"}
    assert [title for title, _ in FIELD_GROUPS][:5] == ["Traffic", "Faults", "Retries", "Consumer", "SLO"]


def test_every_parameter_has_a_plain_words_label_and_keeps_its_name():
    form = ExperimentForm()
    for name in [*DEFAULTS, "seed"]:
        label = form.fields[name].label
        assert label, name
        assert "_" not in label, name
        assert label[0].isupper(), name
    assert form.fields["jobs"].label == "Messages to send"
    assert form.fields["failure_rate"].label == "Chance an attempt fails (transient)"
    assert form.fields["duration_ms"].label == "Work per attempt (ms)"
    assert set(DEFAULTS) <= set(form.fields)  # names are the CLI's and the URLs' contract


def test_preset_overrides_name_what_makes_each_lesson():
    assert preset_overrides("happy") == set()
    assert preset_overrides("spike") == {"jobs", "queue_cap", "duration_ms", "duration_spread_ms"}
    assert {"outage_s", "jitter", "backoff_base_s"} <= preset_overrides("retry-storm")
    assert "jitter" not in preset_overrides("flaky")  # flaky keeps the default full jitter
    assert preset_overrides("nope") == set()
    for name in PRESETS:
        assert preset_overrides(name) <= set(DEFAULTS)
