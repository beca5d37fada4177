"""Delivery models in the live view and compare: lag per partition over time, who owns which partition,
the live consumers, and which model to try next."""

from prepsite import charts
from sandbox import delivery
from sandbox.engine import live
from sandbox.engine.budget import MAX_PARTITIONS
from sandbox.engine.series import depth_samples, lag_series
from sandbox.models import Experiment

# Counters that mean something only beside a stream or a log; on RQ shown when not zero (the others
# never: RQ's redeliveries are its retries, its lag the queue depth the charts already show).
DELIVERY_STATS = {"redeliveries": False, "max_lag": False, "order_violations": True, "duplicates_delivered": True}
PARTITION_COLOURS = MAX_PARTITIONS  # .p0 … .p7 in lab.css


def other_models(model: delivery.DeliveryModel) -> list[tuple[str, str]]:
    """(model, name) to run the same preset on next, the one with the most to teach first."""
    first = delivery.MODELS[model.compare_first]
    return [(m.name, m.title) for m in [first, *(m for m in delivery.MODELS.values() if m not in {model, first})]]


def _lag_span(state: live.LiveState, now: float, model: delivery.DeliveryModel) -> tuple[int, int]:
    """(origin, seconds) of a run's lag chart: from its start to now while it runs, else to its last sample."""
    kinds = [seconds for kind, seconds in state.buckets.items() if model.lag_from_queue_depth or kind.startswith("lag")]
    origin = int(state.t0) if state.t0 else min((s for seconds in kinds for s in seconds), default=int(now))
    end = int(now) if not state.finished else max((s for seconds in kinds for s in seconds), default=origin)
    return origin, max(1, end - origin + 1)


def lag_charts(runs: list[tuple[Experiment, live.LiveState]], now: float) -> list[dict]:
    """Each run's lag per partition over time, all on one scale. A stream is one partition; RQ has one
    queue and no offsets, so its lag is the queue depth."""
    models = [delivery.model_for(run.params) for run, _ in runs]
    spans = [_lag_span(state, now, model) for (_, state), model in zip(runs, models, strict=True)]
    seconds = max(span for _, span in spans)
    drawn = []
    for (run, state), model, (origin, _) in zip(runs, models, spans, strict=True):
        labels = model.lag_labels(run.params)
        buckets = {"lag0": depth_samples(state.buckets)} if model.lag_from_queue_depth else state.buckets
        xs, values, bin_s = lag_series(buckets, len(labels), origin=origin, seconds=seconds)
        lines = [
            (label, f"p{i % PARTITION_COLOURS}", line)
            for i, (label, line) in enumerate(zip(labels, values, strict=True))
        ]
        # Samples are once a second; the per-partition maximum Redis kept is the true peak.
        true = {} if model.lag_from_queue_depth else state.max_lag
        peaks = [(label, max(max(line, default=0), true.get(i, 0))) for i, (label, _, line) in enumerate(lines)]
        drawn.append(
            {
                "run": run,
                "model": model,
                "xs": xs,
                "lines": lines,
                "peaks": peaks,
                "bin_s": bin_s,
                "exists": state.exists,
            }
        )
    y_max = max((peak for run in drawn for _, peak in run["peaks"]), default=0)
    for run in drawn:
        what = run["model"].lag_what
        per = f" (the highest in each {run['bin_s']} s)" if run["bin_s"] > 1 else ""
        peaks = ", ".join(f"{label} {peak}" for label, peak in run["peaks"])
        run["chart"] = (
            charts.line_chart(
                name=f"lag-{run['run'].pk}",
                title=f"#{run['run'].pk} on {run['model']}: {what}{per}",
                desc=f"{run['model'].lag_desc} Peaks: {peaks}.",
                xs=run["xs"],
                lines=run["lines"],
                x_label="seconds since the start",
                y_label="messages behind",
                y_max=y_max,
            )
            if run["exists"] and run["xs"]
            else None
        )
        run["legend"] = charts.legend([(label, css) for label, css, _ in run["lines"]])
        run["peak"] = max((peak for _, peak in run["peaks"]), default=0)
    return drawn


def delivery_panel(experiment: Experiment, state: live.LiveState, now: float) -> dict:
    """Stream and log runs: who owns which partition, each partition's lag, the live consumers."""
    model = delivery.model_for(experiment.params)
    if not model.consumed:
        return {}
    partitions = delivery.assignment(experiment.pk, experiment.params)
    owned: dict[str | None, list[int]] = {}
    for row in partitions:
        owned.setdefault(row["owner"], []).append(row["partition"])
    consumers = [{**c, "owns": owned.get(c["name"], [])} for c in delivery.consumers()]
    return {
        "partitions": partitions,
        "consumers": consumers,
        "lag": lag_charts([(experiment, state)], now)[0],
        "can_kill": experiment.is_running and not state.finished,
    }
