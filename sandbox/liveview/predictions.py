"""Numeric predictions: for each preset, the few numbers worth guessing before a run, and how close a guess was.

The keys are stored in `Experiment.predicted` ({key: number}); renaming one orphans stored predictions.
"""

import math
from dataclasses import dataclass

from django import forms

from sandbox.engine.budget import HORIZON_S, MAX_JOBS
from sandbox.engine.lessons import lesson_for

CLOSE_SHARE = 0.2  # "close": within 20% of what happened
CLOSE_ABSOLUTE = 1  # ... or within one, so small counts are not judged by percentages


@dataclass(frozen=True)
class Prediction:
    key: str
    label: str
    unit: str
    min_value: float
    max_value: float
    whole: bool = True  # a count: the form takes whole numbers only

    def field(self) -> forms.Field:
        options = dict(
            label=self.label,
            required=False,
            min_value=self.min_value,
            max_value=self.max_value,
            help_text=f"{self.unit}, {self.min_value:g}–{self.max_value:g}",
        )
        return forms.IntegerField(**options) if self.whole else forms.FloatField(**options)


DEAD_LETTERED = Prediction("dead_lettered", "Jobs in the DLQ at the end", "jobs", 0, MAX_JOBS)
ATTEMPTS_PER_JOB = Prediction(
    "attempts_per_job", "Attempts per job, the first one included", "attempts", 0, 50, whole=False
)
DOUBLE_CHARGES = Prediction("double_charges", "Customers charged twice", "charges", 0, MAX_JOBS)
REJECTED = Prediction("rejected", "Jobs turned away at the door (shed)", "jobs", 0, MAX_JOBS)
PEAK_DEPTH = Prediction("peak_depth", "Most jobs waiting in the queue at once", "jobs", 0, MAX_JOBS)
DRAIN_S = Prediction("drain_s", "Seconds from the first arrival until the last job is done", "s", 0, 4 * HORIZON_S)
RETRY_PEAK = Prediction("retry_peak", "Most retries due in one second", "retries", 0, MAX_JOBS * 10)
SUCCEEDED = Prediction("succeeded", "Jobs charged successfully", "jobs", 0, MAX_JOBS)
DUPLICATES = Prediction("duplicates_delivered", "Messages delivered a second time", "deliveries", 0, MAX_JOBS * 10)
ORDER_VIOLATIONS = Prediction(
    "order_violations", "Events applied after a later event of their customer", "events", 0, MAX_JOBS
)
RETRIES = Prediction("retries", "Retries in all", "retries", 0, MAX_JOBS * 10)
MAX_LAG = Prediction("max_lag", "Most messages one partition fell behind", "messages", 0, MAX_JOBS)
LOST = Prediction("lost", "Orders saved whose event was never published", "orders", 0, MAX_JOBS)
GHOSTS = Prediction("ghosts", "Events about orders that do not exist", "events", 0, MAX_JOBS)
DUPLICATE_EVENTS = Prediction("duplicates", "Events published more than once", "events", 0, MAX_JOBS * 10)
COMPENSATED = Prediction("compensated", "Sagas undone by compensation", "sagas", 0, MAX_JOBS)
NEEDS_HUMAN = Prediction("needs_human", "Sagas left in the DLQ for a human", "sagas", 0, MAX_JOBS)
FINAL_RUNS = Prediction("final_runs", "Times a batch's final step ran, all batches", "runs", 0, MAX_JOBS * 10)
EARLY_FINALS = Prediction("early_finals", "Final steps that ran before every child was done", "runs", 0, MAX_JOBS * 10)
DOUBLE_EFFECTS = Prediction("double_effects", "Events the consumer acted on twice", "effects", 0, MAX_JOBS * 10)
DEPTH_STAGE2 = Prediction("max_depth_stage2", "Most items waiting before stage 2 at once", "items", 0, MAX_JOBS)
DEPTH_STAGE3 = Prediction("max_depth_stage3", "Most items waiting before stage 3 at once", "items", 0, MAX_JOBS)
AGE_STAGE3 = Prediction("max_age_ms_stage3", "Longest an item waited before stage 3", "ms", 0, HORIZON_S * 1000)
URGENT_P95 = Prediction("urgent_p95_ms", "Urgent jobs' p95 latency, arrival to done", "ms", 0, HORIZON_S * 1000)
LOW_THROUGHPUT = Prediction("low_throughput", "Low-priority jobs done per minute", "jobs a minute", 0, 60 * MAX_JOBS)

FIELDS: dict[str, list[Prediction]] = {
    "happy": [DRAIN_S],
    "flaky": [DEAD_LETTERED, RETRIES],
    "retry-storm": [RETRY_PEAK, DEAD_LETTERED],
    "poison": [DEAD_LETTERED, ATTEMPTS_PER_JOB],
    "timeout": [DEAD_LETTERED, DRAIN_S],
    "crash": [DOUBLE_CHARGES, SUCCEEDED],
    "duplicates": [DOUBLE_CHARGES],
    "spike": [REJECTED],
    "slow-consumer": [PEAK_DEPTH, DRAIN_S],
    "visibility-timeout": [DUPLICATES, DOUBLE_CHARGES],
    "ordering": [ORDER_VIOLATIONS],
    "head-of-line": [MAX_LAG, DEAD_LETTERED],
    "rebalance": [MAX_LAG, DOUBLE_CHARGES],
    "dual-write": [LOST, GHOSTS],
    "outbox": [LOST, DUPLICATE_EVENTS, DOUBLE_EFFECTS],
    "saga": [COMPENSATED, NEEDS_HUMAN],
    "fan-in": [FINAL_RUNS, EARLY_FINALS],
    "pipeline": [DEPTH_STAGE2, DEPTH_STAGE3, AGE_STAGE3],
    "priority-inversion": [URGENT_P95, LOW_THROUGHPUT],
    "priority-reserved": [URGENT_P95, LOW_THROUGHPUT],
}
EXTRAS = ("peak_depth", "drain_s", "retry_peak")  # measured from the live state, not counted


def fields_for(preset: str) -> list[Prediction]:
    """The numbers worth predicting for this preset (none for an unknown one)."""
    return list(FIELDS.get(preset, []))


class PredictionForm(forms.Form):
    """One optional, bounded number per prediction of the preset; bad input is an error, never an exception."""

    def __init__(self, preset: str, data=None, prefix: str = "predict", **kwargs):
        super().__init__(data=data, prefix=prefix, **kwargs)
        self.preset = preset
        for prediction in fields_for(preset):
            self.fields[prediction.key] = prediction.field()

    def use_choices(self) -> None:
        """Beginner's mode: each number is picked from a few choices around the typical result."""
        answers = lesson_for(self.preset).answers
        for prediction in fields_for(self.preset):
            if prediction.key in answers:
                options = choices_around(prediction, answers[prediction.key])
                self.fields[prediction.key].widget = forms.RadioSelect(choices=[(v, f"{v:g}") for v in options])

    def focus_first(self) -> None:
        """Put focus on the first prediction field when the page (or htmx's swap) shows the form."""
        for field in self.fields.values():
            field.widget.attrs["autofocus"] = True
            return

    def predictions(self) -> dict[str, float | int]:
        """The numbers given, {key: value}, for Experiment.predicted (call after is_valid())."""
        return {key: value for key, value in self.cleaned_data.items() if value is not None}


def choices_around(prediction: Prediction, answer: float) -> list[float]:
    """Four options, in order: a quarter, half, the typical result and double (0, 1, 3, 10 when it is 0)."""
    raw = [answer * f for f in (0.25, 0.5, 1, 2)] if answer else [0, 1, 3, 10]
    kept = {min(max(v, prediction.min_value), prediction.max_value) for v in raw}
    return sorted({round(v) if prediction.whole else round(v, 1) for v in kept})


def _number(value) -> float | int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return int(number) if isinstance(value, int) else number


def observed(preset: str, outcome: dict, extras: dict) -> dict[str, float | int | None]:
    """What the run showed for each of the preset's predictions; None where it is not known (yet, or any more).

    outcome: sandbox.engine.outcome.outcome(); extras: {"peak_depth", "drain_s", "retry_peak"} from the live state.
    """
    values: dict[str, float | int | None] = {}
    for prediction in fields_for(preset):
        key = prediction.key
        if key in EXTRAS:
            values[key] = _number(extras.get(key))
        elif key == "attempts_per_job":
            attempts, enqueued = _number(outcome.get("attempts")), _number(outcome.get("enqueued"))
            values[key] = round(attempts / enqueued, 2) if attempts is not None and enqueued else None
        else:
            values[key] = _number(outcome.get(key))
    return values


def verdict(predicted: float | None, seen: float | None) -> str:
    if predicted is None:
        return "no prediction"
    if seen is None:
        return "not observed"
    off = abs(seen - predicted)
    if math.isclose(seen, predicted, rel_tol=1e-9, abs_tol=1e-9):
        return "spot on"
    if off <= CLOSE_ABSOLUTE or off <= CLOSE_SHARE * abs(seen):
        return "close"
    return "off"


def compare(preset: str, predicted: dict, observed: dict) -> list[dict]:
    """One row per prediction: {key, label, unit, predicted, observed, off, verdict}.

    verdict: "spot on", "close" (within 20% of what happened, or within 1), "off", "no prediction", or
    "not observed" when the run cannot tell (still running, or its live state expired).
    """
    rows = []
    for prediction in fields_for(preset):
        guess, seen = _number(predicted.get(prediction.key)), _number(observed.get(prediction.key))
        off = None if guess is None or seen is None else round(seen - guess, 2)
        rows.append(
            {
                "key": prediction.key,
                "label": prediction.label,
                "unit": prediction.unit,
                "predicted": guess,
                "observed": seen,
                "off": int(off) if off is not None and off == int(off) else off,
                "verdict": verdict(guess, seen),
            }
        )
    return rows
