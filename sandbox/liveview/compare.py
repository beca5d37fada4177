"""Two runs side by side: parameters (what differs), outcomes as paired bars, retry waves and lag on one scale."""

import time

from prepsite import charts
from sandbox import delivery
from sandbox.engine.outcome import outcome, read_state
from sandbox.engine.presets import DEFAULTS
from sandbox.engine.series import drain_seconds, retry_histogram
from sandbox.liveview import lesson
from sandbox.liveview.lag import DELIVERY_STATS, lag_charts
from sandbox.liveview.workflows import compare_rows
from sandbox.models import Experiment

COMPARE_OUTCOMES = [
    ("requested", "requested"),
    ("rejected", "rejected"),
    ("succeeded", "succeeded"),
    ("dead_lettered", "dead-lettered"),
    ("stopped", "stopped"),
    ("attempts", "attempts"),
    ("retries", "retries"),
    ("timeouts", "timeouts"),
    ("crashes", "crashes"),
    ("recovered", "recovered"),
    ("redriven", "redriven"),
    ("duplicates_suppressed", "duplicates suppressed"),
    ("double_charges", "double charges"),
    ("duplicates_delivered", "duplicate deliveries"),
    ("redeliveries", "redeliveries"),
    ("order_violations", "order violations"),
    ("max_lag", "max lag (messages behind)"),
    ("drain_s", "drain time (s)"),
    ("p50_ms", "p50 (ms)"),
    ("p95_ms", "p95 (ms)"),
    ("max_ms", "max latency (ms)"),
]
# What a second delivery model changes, shown first when two runs differ in model.
COMPARE_HEADLINE = ("attempts", "duplicates_delivered", "order_violations", "max_lag", "drain_s")
COMPARE_DELIVERY_ROWS = {"duplicates_delivered", "redeliveries", "order_violations", "max_lag"}


def comparison(a: Experiment, b: Experiment) -> dict:
    """Two runs side by side: parameters (what differs), outcomes as paired bars, and both runs'
    retry waves on one scale (the jitter lesson reads off the two charts)."""
    state_a, state_b = read_state(a), read_state(b)
    out_a, out_b = outcome(a, state_a), outcome(b, state_b)
    for out, state in ((out_a, state_a), (out_b, state_b)):
        out["drain_s"] = drain_seconds(state.buckets) if state.exists else out.get("drain_s")
    models = [delivery.model_for(a.params), delivery.model_for(b.params)]
    consumed = any(model.consumed for model in models)
    params = [
        {
            "name": name,
            "a": a.params.get(name),
            "b": b.params.get(name),
            "differs": a.params.get(name) != b.params.get(name),
        }
        for name in DEFAULTS
    ]
    shown_a, shown_b = ({k: round(v) if isinstance(v, float) else v for k, v in out.items()} for out in (out_a, out_b))
    outcomes = []
    for key, label in COMPARE_OUTCOMES + compare_rows(out_a, out_b):  # the workflow families' counters too
        va, vb = shown_a.get(key), shown_b.get(key)
        if key in COMPARE_DELIVERY_ROWS and not consumed and not (DELIVERY_STATS[key] and (va or vb)):
            continue
        top = max(v for v in (va, vb, 1) if isinstance(v, int | float))
        outcomes.append(
            {
                "key": key,
                "name": label,
                "a": va,
                "b": vb,
                "differs": va != vb,
                "a_pct": round(100 * va / top) if isinstance(va, int | float) else 0,
                "b_pct": round(100 * vb / top) if isinstance(vb, int | float) else 0,
            }
        )
    waves = []
    peak = max([*state_a.retry_hist.values(), *state_b.retry_hist.values(), 0])
    hists = [retry_histogram(state.retry_hist, state.t0) for state in (state_a, state_b)]
    x_until = max((xs[-1] for xs, _, _ in hists if xs), default=None)  # both runs on one x-scale too
    for (run, state), (xs, ys, bin_s) in zip(((a, state_a), (b, state_b)), hists, strict=True):
        waves.append(
            {
                "run": run,
                "peak": max(state.retry_hist.values(), default=0),
                "seconds": len(state.retry_hist),
                "chart": charts.bar_chart(
                    name=f"waves-{run.pk}",
                    title=f"#{run.pk}: retries due per second (jitter {run.params.get('jitter')})",
                    desc="Retries due in each second since the start, on the same scale for both runs.",
                    xs=xs,
                    bars=[("retries due", "retry", ys)],
                    x_label="seconds since the start",
                    y_label="retries due" + (f" per {bin_s} s" if bin_s > 1 else " per second"),
                    y_max=peak,
                    x_until=x_until,
                )
                if xs
                else None,
            }
        )
    running = a.is_running or b.is_running
    lags = lag_charts([(a, state_a), (b, state_b)], time.time()) if consumed else []
    tables = [{"id": "outcomes", "title": "Outcomes", "rows": outcomes}]
    if models[0] != models[1]:
        headline = [row for row in outcomes if row["key"] in COMPARE_HEADLINE]
        tables = [
            {
                "id": "delivery",
                "title": f"What the delivery model changed: {models[0]} vs {models[1]}",
                "rows": headline,
            },
            {"id": "outcomes", "title": "Other outcomes", "rows": [row for row in outcomes if row not in headline]},
        ]
    scores = [
        {"run": run, "rows": lesson.score(run, lesson.figures(out, {}), done=not run.is_running, fixed=False)["rows"]}
        for run, out in ((a, out_a), (b, out_b))
    ]
    return {
        "a": a,
        "b": b,
        "scores": scores if any(score["rows"] for score in scores) else [],
        "params_differ": [row for row in params if row["differs"]],
        "params_same": [row for row in params if not row["differs"]],
        "models": [{"run": run, "model": model} for run, model in zip((a, b), models, strict=True)],
        "params": params,
        "outcomes": outcomes,
        "tables": tables,
        "waves": waves,
        "lags": [lag for lag in lags if lag["chart"]],
        "running": running,
    }
