"""What every view of an experiment shows — the live view, the history, compare and the CLI.

Built on `sandbox.live` (the experiment's Redis keys) and the Experiment row, so the web and the
terminal show the same numbers from the same code. Reading never changes anything.
"""

import contextlib
import math
import time
from datetime import UTC, datetime

from prepsite.redis_conn import LAB_QUEUE, get_redis
from sandbox import charts, delivery, fairshare, live, predictions, rq_storage
from sandbox.budget import MAX_PARTITIONS
from sandbox.explain import drain_seconds, explain
from sandbox.models import Experiment
from sandbox.outcome import outcome, read_state, slo_verdict
from sandbox.presets import DEFAULTS, PRESETS
from sandbox.retry_policy import backoff_ceiling
from sandbox.series import depth_samples, lag_series, retry_histogram, series_from_buckets
from sandbox.workers import scheduler_alive
from topics.models import Question, Section

TIMELINE_JOBS = 30
DLQ_ROWS = 20
FAILED_MARKS = ("error", "timeout", "crash", "abandoned")
EVENT_PILL = {
    "succeeded": "ok",
    "redriven": "ok",
    "dead_lettered": "err",
    "double_charge": "err",
    "retry_scheduled": "warn",
    "rejected": "warn",
    "stopped": "warn",
    "redelivered": "warn",
    "rebalanced": "warn",
    "consumer_killed": "err",
    "consumer_kill_requested": "err",
    "order_violation": "err",
}
# Event kinds in words where the identifier reads badly; the rest lose their underscores.
EVENT_LABEL = {"rebalanced": "partition moved", "order_violation": "out of order", "redelivered": "delivered again"}
# (key, label, css) of the counters panel, in reading order.
STATS = [
    ("requested", "requested", ""),
    ("queued", "queued", ""),
    ("running", "running", ""),
    ("scheduled", "scheduled for retry", "warn"),
    ("succeeded", "succeeded", "ok"),
    ("dead_lettered", "dead-lettered", "err"),
    ("stopped", "stopped", ""),
    ("rejected", "rejected", "warn"),
    ("duplicates_suppressed", "duplicates suppressed", ""),
    ("double_charges", "double charges", "err"),
    ("order_violations", "order violations", "err"),
    ("duplicates_delivered", "duplicate deliveries", "warn"),
    ("redeliveries", "redeliveries", "warn"),
    ("max_lag", "max lag", "warn"),
    ("attempts", "attempts", "minor"),
    ("retries", "retries", "minor"),
    ("timeouts", "timeouts", "minor"),
    ("crashes", "crashes", "minor"),
    ("recovered", "recovered", "minor"),
    ("redriven", "redriven", "minor"),
    ("discarded", "discarded", "minor"),
]
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
# Counters that mean something only beside a stream or a log; on RQ shown when not zero (the others
# never: RQ's redeliveries are its retries, its lag the queue depth the charts already show).
DELIVERY_STATS = {"redeliveries": False, "max_lag": False, "order_violations": True, "duplicates_delivered": True}
# What a second delivery model changes, shown first when two runs differ in model.
COMPARE_HEADLINE = ("attempts", "duplicates_delivered", "order_violations", "max_lag", "drain_s")
COMPARE_DELIVERY_ROWS = {"duplicates_delivered", "redeliveries", "order_violations", "max_lag"}
PARTITION_COLOURS = MAX_PARTITIONS  # .p0 … .p7 in lab.css


def ago(moment: datetime, now: datetime | None = None) -> str:
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def recent(experiments) -> list[dict]:
    return [{"experiment": e, "ago": ago(e.created_at)} for e in experiments]


def history(experiments) -> list[dict]:
    return [{"experiment": e, "outcome": outcome(e)} for e in experiments]


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
    for key, label in COMPARE_OUTCOMES:
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
    for run, state in ((a, state_a), (b, state_b)):
        xs, ys, bin_s = retry_histogram(state.retry_hist, state.t0)
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
    return {
        "a": a,
        "b": b,
        "models": [{"run": run, "model": model} for run, model in zip((a, b), models, strict=True)],
        "params": params,
        "outcomes": outcomes,
        "tables": tables,
        "waves": waves,
        "lags": [lag for lag in lags if lag["chart"]],
        "running": running,
    }


# ---------------------------------------------------------------- delivery models


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


def lab_home(experiments, preset_name: str, form, prediction_form=None) -> dict:
    """The Lab home: preset cards with their links, the start form in its groups, recent runs, the workers."""
    preset = PRESETS.get(preset_name) or PRESETS["happy"]
    links = preset_links(PRESETS)
    return {
        "cards": [{"preset": p, **links.get(p.name, {}), "chosen": p.name == preset.name} for p in PRESETS.values()],
        "preset": preset,
        "form": form,
        "groups": form.groups(preset.name),
        "prediction_form": prediction_form or predictions.PredictionForm(preset.name),
        "other_models": other_models(delivery.model_for({"model": form["model"].value() or DEFAULTS["model"]})),
        "recent": recent(experiments[:5]),
        "status": lab_status(),
    }


# ---------------------------------------------------------------- links to Study and Drills


def preset_links(preset_names) -> dict[str, dict]:
    """For each preset: the Study section that explains it and the first drill that names it (content
    decides both: a question's `preset:` front matter is the one preset-to-drill link)."""
    presets = {name: PRESETS[name] for name in preset_names if name in PRESETS}
    sections = {
        s.slug: s
        for s in Section.objects.filter(slug__in={p.section for p in presets.values()}).select_related("topic")
    }
    drills: dict[str, str] = {}
    for question in Question.objects.filter(preset__in=list(presets)).select_related("topic").in_order():
        drills.setdefault(question.preset, question.get_absolute_url())
    links = {}
    for name, preset in presets.items():
        section = sections.get(preset.section)
        links[name] = {
            "study_url": section.get_absolute_url() if section else None,
            "study_title": section.title if section else "",
            "drill_url": drills.get(name),
        }
    return links


# ---------------------------------------------------------------- the live view


def ceilings(params: dict) -> list[float]:
    """The backoff window each retry's wait is drawn from (the exponential ceilings before jitter)."""
    p = {**DEFAULTS, **params}
    return [
        backoff_ceiling(attempt=n, backoff=p["backoff"], base_s=p["backoff_base_s"], cap_s=p["backoff_cap_s"])
        for n in range(1, p["max_retries"] + 1)
    ]


def _plan_text(intervals: list[float], windows: list[float], jitter: str) -> str:
    if not intervals:
        return ""
    if jitter == "none":
        return "if it fails, retries after " + ", ".join(f"{s:g}s" for s in intervals)
    drawn = ", ".join(f"{s:g}s (of ≤{c:g})" for s, c in zip(intervals, windows, strict=False))
    return f"if it fails, retries after {drawn}: {jitter} jitter draws each wait from its window"


def _last_failure(marks: list[dict]) -> dict:
    failures = [m for m in marks if m.get("r") in FAILED_MARKS]
    return failures[-1] if failures else {}


def _attempts(marks: list[dict]) -> int:
    return sum(1 for m in marks if m.get("r") != "redriven")


def timeline(experiment: Experiment, state: live.LiveState, now: float, lost: set[int] | None = None) -> list[dict]:
    """Up to TIMELINE_JOBS jobs, running, scheduled and dead-lettered first, with every attempt."""
    first = [*sorted(state.running), *sorted(state.scheduled), *state.dlq]
    jobs = list(dict.fromkeys(first))[:TIMELINE_JOBS]
    for job in range(1, state.counters.get("enqueued", 0) + 1):
        if len(jobs) >= TIMELINE_JOBS:
            break
        if job not in jobs:
            jobs.append(job)
    if not jobs:
        return []
    marks = live.job_marks(experiment.pk, jobs)
    plans = live.job_plans(experiment.pk, jobs)
    windows = ceilings(experiment.params)
    jitter = experiment.params.get("jitter", DEFAULTS["jitter"])
    lost = lost_jobs(experiment, state) if lost is None else lost
    dlq = set(state.dlq)
    rows = []
    for job in jobs:
        job_marks = [{**m, "label": "↺" if m.get("r") == "redriven" else m.get("n")} for m in marks.get(job, [])]
        if job in lost:
            status = "worker lost"
        elif job in state.running:
            status = "running"
        elif job in state.scheduled:
            status = "scheduled"
        elif job in dlq:
            status = "dead-lettered"
        elif job_marks:
            status = job_marks[-1].get("r")
        else:
            status = "queued"
        retry_at = state.scheduled.get(job)
        rows.append(
            {
                "job": job,
                "status": status,
                "marks": job_marks,
                "attempts": _attempts(job_marks),
                "latest_error": _last_failure(job_marks).get("e", ""),
                "plan": _plan_text(plans.get(job, []), windows, jitter),
                "ceilings": windows,
                "running_since": state.running.get(job, {}).get("since"),
                "retry_at": retry_at,
                "retry_in": max(0, math.ceil(retry_at - now)) if retry_at else None,
            }
        )
    return rows


def lost_jobs(experiment: Experiment, state: live.LiveState) -> set[int]:
    """Running jobs whose work-horse stopped beating: their worker died; the janitor will retry them."""
    ids = {live.job_id_for(experiment.pk, job): job for job in state.running}
    return {ids[job_id] for job_id, alive in live.beating(list(ids)).items() if not alive}


def dlq_rows(experiment: Experiment, state: live.LiveState) -> list[dict]:
    jobs = state.dlq[:DLQ_ROWS]
    marks = live.job_marks(experiment.pk, jobs) if jobs else {}
    rows = []
    for job in jobs:
        failure = _last_failure(marks.get(job, []))
        rows.append(
            {
                "job": job,
                "attempts": _attempts(marks.get(job, [])),
                "last_error": failure.get("e", ""),
                "cause": failure.get("r", ""),
            }
        )
    return rows


def workers(now: float) -> dict:
    """Every worker's state and current job, and whether the scheduler runs."""
    redis = get_redis()
    rows = [
        {
            **row,
            "job": ", ".join(row.pop("jobs")),
            "heartbeat_age": round(row["heartbeat_age"], 1) if row["heartbeat_age"] is not None else None,
        }
        for row in rq_storage.workers_and_jobs(redis, now)
    ]
    return {"rows": rows, "scheduler": scheduler_alive(redis, LAB_QUEUE)}


def lab_status() -> dict:
    """Workers and scheduler as the Lab's home page shows them."""
    redis = get_redis()
    return {"workers": rq_storage.worker_count(redis), "scheduler": scheduler_alive(redis, LAB_QUEUE)}


def events(state: live.LiveState) -> list[dict]:
    rows = []
    for event in state.events:
        details = {k: v for k, v in event.items() if k not in {"id", "t", "kind", "job"}}
        if details.get("cause") == "error" and "error" in details:
            del details["cause"]  # the error names the exception already
        if len(details.get("worker", "")) > 12:
            details["worker"] = details["worker"][:8] + "…"  # RQ names are 32 hex digits; 8 tell them apart
        if "at" in details and state.t0:
            with contextlib.suppress(ValueError):
                details["at"] = f"+{float(details['at']) - state.t0:.0f}s"
        rows.append(
            {
                "t": float(event.get("t", 0)) - state.t0 if state.t0 else 0,
                "kind": event.get("kind", ""),
                "label": EVENT_LABEL.get(event.get("kind", ""), event.get("kind", "").replace("_", " ")),
                "pill": EVENT_PILL.get(event.get("kind", ""), ""),
                "job": event.get("job", ""),
                "details": sorted(details.items()),
            }
        )
    return rows


def stats(summary: dict, state: live.LiveState | None, model: delivery.DeliveryModel = delivery.DEFAULT) -> list[dict]:
    values = dict(summary)
    if state is not None:
        values |= {"queued": state.queued, "running": len(state.running), "scheduled": len(state.scheduled)}
    if not model.consumed:
        values = {k: v for k, v in values.items() if k not in DELIVERY_STATS or (DELIVERY_STATS[k] and v)}
    return [
        {"key": key, "label": label, "value": values[key], "css": css} for key, label, css in STATS if key in values
    ]


def _charts(state: live.LiveState, now: float) -> dict:
    series = series_from_buckets(state.buckets, now=now)
    hist_x, hist_y, hist_bin = retry_histogram(state.retry_hist, state.t0)
    per = f"per {series.bin_s} s" if series.bin_s > 1 else "per second"
    return {
        "series": series,
        "depth_chart": charts.line_chart(
            name="depth",
            title="Queue depth and jobs in flight over time",
            desc="Queue depth is arrivals minus starts so far; in flight is starts minus ends so far.",
            xs=series.seconds,
            lines=[("queue depth", "depth", series.depth), ("in flight", "inflight", series.in_flight)],
            x_label="seconds since the first arrival",
            y_label="jobs",
        ),
        "depth_legend": charts.legend([("queue depth", "depth"), ("in flight", "inflight")]),
        "throughput_chart": charts.bar_chart(
            name="throughput",
            title=f"Completions and failures {per}",
            desc="Stacked bars: attempts that succeeded and attempts that failed in each slot.",
            xs=series.seconds,
            bars=[("succeeded", "ok", series.ok), ("failed", "fail", series.fail)],
            x_label="seconds since the first arrival",
            y_label=f"attempts {per}",
        ),
        "throughput_legend": charts.legend([("succeeded", "ok"), ("failed attempts", "fail")]),
        "retry_chart": charts.bar_chart(
            name="retries",
            title="When retries are due",
            desc="Retries due in each second since the start. Without jitter they pile up on the same seconds.",
            xs=hist_x,
            bars=[("retries due", "retry", hist_y)],
            x_label="seconds since the start",
            y_label="retries due" + (f" per {hist_bin} s" if hist_bin > 1 else " per second"),
        )
        if hist_x
        else None,
        "retry_peak": max(state.retry_hist.values(), default=0),
        "peak_depth": series.peak_depth,
    }


def announcements(experiment: Experiment, state: live.LiveState, summary: dict) -> list[dict]:
    """What a screen reader should hear once each (the page keeps a note of what it already said)."""
    said = []
    if state.dlq:
        said.append({"key": "first-dead-letter", "text": f"Job {state.dlq[0]} is in the dead-letter queue."})
    if state.finished:
        slo = "met" if summary.get("slo_met") else "missed"
        said.append(
            {
                "key": f"finished-{summary.get('redriven', 0)}",
                "text": f"Finished: {summary.get('succeeded', 0)} succeeded, {summary.get('dead_lettered', 0)} "
                f"dead-lettered, {summary.get('double_charges', 0)} double charges; the latency SLO was {slo}.",
            }
        )
    return said


def prediction_rows(experiment: Experiment, summary: dict, extras: dict) -> list[dict]:
    observed = predictions.observed(experiment.preset, summary, extras)
    return predictions.compare(experiment.preset, experiment.predicted or {}, observed)


def live_view(experiment: Experiment, state: live.LiveState, *, with_links: bool = True) -> dict:
    """Everything the live view's panels show, from one read of the state."""
    now = time.time()
    summary = outcome(experiment, state)
    model = delivery.model_for(experiment.params)
    base = {
        "experiment": experiment,
        "model": model,
        "model_name": model.title,
        "model_summary": model.summary(experiment.params),
        "other_models": other_models(model),
        "preset": PRESETS.get(experiment.preset),
        "state": state,
        "outcome": summary,
        "params": [(name, experiment.params.get(name)) for name in DEFAULTS],
        "timeline_limit": TIMELINE_JOBS,
        "version": state.version,
    }
    if with_links:
        base |= preset_links([experiment.preset]).get(experiment.preset, {})
    if not state.exists:
        return {
            **base,
            "expired": True,
            "done": True,
            "stats": stats(summary, None, model),
            "explain": explain(experiment.params, summary, None) if experiment.summary else [],
            "predictions": prediction_rows(experiment, summary, {}) if experiment.summary else [],
        }
    drawn = _charts(state, now)
    series = drawn.pop("series")
    lost = lost_jobs(experiment, state)
    rows = timeline(experiment, state, now, lost)
    drain = drain_seconds(state.buckets)
    return {
        **base,
        **drawn,
        "expired": False,
        "done": state.finished,
        "stats": stats(summary, state, model),
        **delivery_panel(experiment, state, now),
        "slo": slo_verdict(experiment.params, state.latencies.get("slo")),
        "timeline": rows,
        "lanes": charts.swimlanes(
            rows=rows,
            t0=state.t0,
            now=now,
            title="Each job's attempts on a time axis",
            desc="One lane per job: attempts as bars coloured by outcome, each retry's wait as a line, and the "
            "backoff window that wait was drawn from as a pale band. The job list below says the same in words.",
        ),
        "dlq_rows": dlq_rows(experiment, state),
        "dlq_more": max(0, len(state.dlq) - DLQ_ROWS),
        "can_fix": experiment.params.get("poison_rate", 0) > 0 and not state.consumer_fixed,
        "workers": workers(now),
        "running_jobs": [
            {
                "job": job,
                "worker": info.get("worker", ""),
                "pid": info.get("pid"),
                "for_s": round(now - info.get("since", now), 1),
                "lost": job in lost,
            }
            for job, info in sorted(state.running.items())
        ],
        "events": events(state),
        "explain": explain(
            experiment.params,
            summary,
            series.peak_depth,
            drain,
            slots=fairshare.granted(experiment.limit_key, get_redis()) if experiment.limit_key else None,
            redriven_at_s=state.first_redrive - state.t0 if state.first_redrive and state.t0 else None,
            buckets=state.buckets,
            retry_hist=state.retry_hist,
        )
        if state.finished
        else [],
        "predictions": prediction_rows(
            experiment, summary, {"peak_depth": series.peak_depth, "drain_s": drain, "retry_peak": drawn["retry_peak"]}
        )
        if state.finished
        else [],
        "announce": announcements(experiment, state, summary),
        "t0": datetime.fromtimestamp(state.t0, tz=UTC) if state.t0 else None,
    }
