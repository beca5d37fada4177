"""The lesson card at the top of a result: one headline with the run's numbers, the few figures the preset
is about, the prediction scored against the run's first finish, the "why?" question and what to try next.

Scoring is honest: predictions are judged against the first finish (Experiment.first_pass), never against
counters a redrive or a fix changed since; those changes get rows of their own; a run stopped early is not
scored.
"""

import random

from sandbox.engine.lessons import Lesson, lesson_for
from sandbox.engine.presets import PRESETS
from sandbox.liveview import predictions
from sandbox.models import Experiment

# Figures the lesson may show beside the counters panel's, in words.
FIGURE_LABELS = {
    "requested": "requested",
    "enqueued": "admitted",
    "succeeded": "succeeded",
    "dead_lettered": "dead-lettered",
    "rejected": "rejected",
    "attempts": "attempts",
    "retries": "retries",
    "timeouts": "timeouts",
    "crashes": "crashes",
    "stopped": "stopped",
    "duplicates_delivered": "duplicate deliveries",
    "duplicates_suppressed": "duplicates suppressed",
    "double_charges": "double charges",
    "order_violations": "order violations",
    "redeliveries": "redeliveries",
    "max_lag": "max lag (messages)",
    "peak_depth": "peak queue depth",
    "drain_s": "seconds to drain",
    "retry_peak": "most retries due in one second",
    "p95_ms": "p95 latency (ms)",
    "lost": "lost events",
    "ghosts": "ghost events",
    "duplicates": "events published twice",
    "double_effects": "double effects",
    "completed": "sagas completed",
    "compensated": "sagas compensated",
    "needs_human": "sagas needing a human",
    "half_done": "sagas half-done",
    "batches": "batches",
    "final_runs": "final steps run",
    "early_finals": "early finals",
    "max_depth_stage2": "deepest queue before stage 2",
    "max_depth_stage3": "deepest queue before stage 3",
    "max_age_ms_stage3": "oldest item before stage 3 (ms)",
    "shed": "shed at the front",
    "urgent_p95_ms": "urgent p95 (ms)",
    "urgent_max_ms": "urgent max (ms)",
    "low_throughput": "low-priority jobs a minute",
}
BAD_WHEN_POSITIVE = {
    "dead_lettered", "double_charges", "order_violations", "rejected", "crashes", "timeouts",
    "lost", "ghosts", "double_effects", "half_done", "needs_human", "early_finals",
}  # fmt: skip
CHART_NAMES = {"depth", "throughput", "retries", "lanes", "lag"}


def _tidy(value):
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 2)
    return value


class _Figures(dict):
    """str.format_map values: a figure the run did not record reads as a dash, never a KeyError."""

    def __missing__(self, key: str) -> str:
        return "–"


def figures(outcome: dict, extras: dict) -> dict:
    """The run's figures by name: its outcome, what the live state measured, and attempts per job."""
    values = {**outcome, **{k: v for k, v in extras.items() if v is not None}}
    attempts, enqueued = values.get("attempts"), values.get("enqueued")
    if isinstance(attempts, int | float) and enqueued:
        values["attempts_per_job"] = round(attempts / enqueued, 2)
    return {key: _tidy(value) for key, value in values.items()}


def headline(taught: Lesson, values: dict) -> str:
    if not taught.headline:
        return ""
    return taught.headline.format_map(_Figures({k: v for k, v in values.items() if v is not None}))


def _after_rows(experiment: Experiment, now: dict, first: dict, *, fixed: bool) -> tuple[str, list[dict]]:
    """What a redrive or a fix changed since the first finish, as rows of their own (counts of unique jobs)."""
    redriven = (now.get("redriven") or 0) - (first.get("redriven") or 0)
    if redriven <= 0 and not fixed:
        return "", []
    label = (
        f"After your redrive of {redriven} job{'s' if redriven != 1 else ''}"
        + (" (with the consumer fixed)" if fixed else "")
        if redriven > 0
        else "After your fix (nothing redriven yet)"
    )
    seen = predictions.observed(experiment.preset, now, now)
    rows = [
        {"key": p.key, "label": p.label, "unit": p.unit, "observed": seen.get(p.key)}
        for p in predictions.fields_for(experiment.preset)
    ]
    return label, rows


def score(experiment: Experiment, now: dict, *, done: bool, fixed: bool) -> dict:
    """The prediction table: first-pass rows (scored, or "not scored" for a run stopped early) and the
    after-redrive rows. now: figures() of the run as it is."""
    if not done:
        return {"rows": [], "after": [], "after_label": ""}
    first = experiment.first_pass or now  # a run from before first passes were kept
    rows = predictions.compare(
        experiment.preset, experiment.predicted or {}, predictions.observed(experiment.preset, first, first)
    )
    if not experiment.scored:
        rows = [{**row, "verdict": "not scored", "off": None} for row in rows]
    after_label, after = _after_rows(experiment, now, first, fixed=fixed) if experiment.first_pass else ("", [])
    return {"rows": rows, "after": after, "after_label": after_label}


def untypical(preset: str, first: dict) -> list[dict]:
    """Where this run's first finish is far from what the preset typically gives, so text and run never
    disagree silently: {label, unit, typical, observed} for each such prediction."""
    seen = predictions.observed(preset, first, first)
    rows = []
    for p in predictions.fields_for(preset):
        typical, observed = lesson_for(preset).answers.get(p.key), seen.get(p.key)
        if typical is not None and observed is not None and predictions.verdict(typical, observed) == "off":
            rows.append({"label": p.label.lower(), "unit": p.unit, "typical": typical, "observed": _tidy(observed)})
    return rows


def why_options(taught: Lesson, seed: int) -> list[dict]:
    """The "why?" question's options in an order fixed per run (the right one is not always first)."""
    options = [{"index": i, "text": text} for i, text in enumerate(taught.why.options)]
    random.Random(seed).shuffle(options)
    return options


def lesson(experiment: Experiment, view: dict, *, why_answer: int | None = None) -> dict:
    """Everything the lesson card shows, from the live view's dict (sandbox.liveview.readmodel.live_view)."""
    preset = PRESETS.get(experiment.preset)
    taught = lesson_for(experiment.preset)
    done = view["done"]
    now = figures(view["outcome"], view.get("extras", {}))
    state = view.get("state")
    if state is not None and state.exists:
        now["dead_lettered"] = len(state.dlq)  # unique jobs in the DLQ now (a job redriven twice counts once)
    first = figures(experiment.first_pass, {}) if done and experiment.first_pass else now
    stopped = done and not experiment.scored
    keys = [k for k in taught.counters if k in FIGURE_LABELS]
    shown = first if done else now
    card = {
        "preset": preset,
        "stopped": stopped,
        "headline": "" if stopped or not done else headline(taught, first),
        "figures": [
            {
                "key": key,
                "label": FIGURE_LABELS[key],
                "value": shown.get(key, 0) if shown.get(key) is not None else "–",
                "bad": key in BAD_WHEN_POSITIVE and bool(shown.get(key)),
            }
            for key in keys
        ],
        "chart": taught.chart if taught.chart in CHART_NAMES else "",
        "score": score(experiment, now, done=done, fixed=bool(view.get("consumer_fixed"))),
        "try_next": taught.try_next,
        "prediction_text": [
            f"{p.label.lower()} {experiment.predicted[p.key]}"
            for p in predictions.fields_for(experiment.preset)
            if p.key in (experiment.predicted or {})
        ],
        "stopped_text": f"Stopped early: not scored. {first.get('succeeded', 0)} of {first.get('enqueued', 0)} "
        f"jobs had succeeded and {first.get('stopped', 0)} were stopped."
        if stopped
        else "",
    }
    card["untypical"] = untypical(experiment.preset, first) if done and not stopped else []
    if taught.why and done and not stopped:
        answered = why_answer is not None and 0 <= why_answer < len(taught.why.options)
        card["why"] = {
            "question": taught.why.question,
            "options": why_options(taught, experiment.seed),
            "answered": answered,
            "right": answered and why_answer == taught.why.answer,
            "right_text": taught.why.options[taught.why.answer],
        }
    return card
