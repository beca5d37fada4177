"""The live view of one run: everything its panels show, from one read of its state.

Built on `sandbox.engine.live` (the experiment's Redis keys) and the Experiment row, so the web and the
terminal show the same numbers from the same code. Reading never changes anything.
"""

import contextlib
import math
import time
from datetime import UTC, datetime

from prepsite import charts
from prepsite.redis_conn import LAB_QUEUE, get_redis
from sandbox import delivery
from sandbox.engine import fairshare, live, rq_storage
from sandbox.engine.lessons import lesson_for
from sandbox.engine.outcome import outcome, slo_verdict
from sandbox.engine.presets import DEFAULTS, PRESETS
from sandbox.engine.retry_policy import backoff_ceiling
from sandbox.engine.rq_storage import scheduler_alive
from sandbox.engine.series import retry_histogram, series_from_buckets
from sandbox.liveview.explain import drain_seconds, explain
from sandbox.liveview.lag import DELIVERY_STATS, delivery_panel, other_models
from sandbox.liveview.workflows import workflow_lessons, workflow_panel
from sandbox.models import Experiment
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
    "redis_refused": "warn",
    "rejected": "warn",
    "stopped": "warn",
    "redelivered": "warn",
    "rebalanced": "warn",
    "consumer_killed": "err",
    "consumer_kill_requested": "err",
    "order_violation": "err",
}
# Event kinds in words where the identifier reads badly; the rest lose their underscores.
EVENT_LABEL = {
    "rebalanced": "partition moved", "order_violation": "out of order", "redelivered": "delivered again",
    "redis_refused": "Redis full: run again",
}  # fmt: skip
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
    by_slug = {name: p.drill for name, p in presets.items() if p.drill and name not in drills}  # named by slug
    urls = {
        q.slug: q.get_absolute_url() for q in Question.objects.filter(slug__in=by_slug.values()).select_related("topic")
    }
    for name, slug in by_slug.items():
        if slug in urls:
            drills[name] = urls[slug]
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
    model = delivery.model_for(experiment.params)
    groups = {job: model.lane_group(job, experiment.params) for job in jobs}
    if any(group is not None for group in groups.values()):
        jobs.sort(key=lambda job: (groups[job], job))  # a log's lanes by partition: a stall reads as one block
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
                "group": groups[job],
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


def _error_class(error: str, cause: str) -> str:
    """'PoisonMessage' from 'PoisonMessage: order #3: …'; the cause (timeout, crash) when there is no text."""
    head = error.split(":", 1)[0].strip()
    return head if head and " " not in head else cause or "unknown"


def dlq_groups(experiment: Experiment, state: live.LiveState) -> list[dict]:
    """The DLQ by error class, as a dashboard's Dead tab groups it: count, jobs and one example each."""
    marks = live.job_marks(experiment.pk, state.dlq) if state.dlq else {}
    groups: dict[str, dict] = {}
    for job in state.dlq:
        failure = _last_failure(marks.get(job, []))
        cause, error = failure.get("r", ""), failure.get("e", "")
        key = _error_class(error, cause)
        group = groups.setdefault(key, {"key": key, "cause": cause, "example": error, "jobs": []})
        group["jobs"].append(job)
    return sorted(groups.values(), key=lambda g: (-len(g["jobs"]), g["key"]))


def dlq_group_jobs(experiment: Experiment, key: str) -> list[int]:
    """The jobs now in the DLQ whose last failure has this error class (empty for an unknown class)."""
    state = live.read(experiment.pk, events=0)
    return next((g["jobs"] for g in dlq_groups(experiment, state) if g["key"] == key), [])


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


def stats(
    summary: dict, state: live.LiveState | None, model: delivery.DeliveryModel = delivery.DEFAULT, preset: str = ""
) -> list[dict]:
    values = dict(summary)
    if state is not None:
        values |= {"queued": state.queued, "running": len(state.running), "scheduled": len(state.scheduled)}
    if not model.consumed:
        values = {k: v for k, v in values.items() if k not in DELIVERY_STATS or (DELIVERY_STATS[k] and v)}
    if "order_violations" not in lesson_for(preset).counters:
        values.pop("order_violations", None)  # retries reorder any queue: shown where order is the lesson
    return [
        {"key": key, "label": label, "value": values[key], "css": css} for key, label, css in STATS if key in values
    ]


IDLE_GAP_S = 10  # an idle stretch this long between the first finish and a redrive is drawn as an axis break


def idle_gap(experiment: Experiment, state: live.LiveState) -> tuple[int, int] | None:
    """(from, to), seconds since the start, when nothing happened between the first finish and the first
    redrive: the charts leave it out and the time axis shows a break, so both passes stay readable."""
    end = (experiment.first_pass or {}).get("end")
    if not (state.t0 and state.first_redrive and end):
        return None
    start, stop = math.ceil(end - state.t0) + 1, math.floor(state.first_redrive - state.t0) - 1
    return (start, stop) if stop - start >= IDLE_GAP_S else None


def axis_seconds(state: live.LiveState, now: float, gap: tuple[int, int] | None = None) -> int:
    """The one x-scale of a run's charts: from its start to now (to its last event once finished),
    less an idle gap drawn as a break."""
    idle = gap[1] - gap[0] if gap else 0
    return charts.nice_max(max(10.0, now - state.t0 - idle)) if state.t0 else 10


def _outside(gap: tuple[int, int] | None, xs: list[int], *columns: list[int]) -> list[list[int]]:
    """xs and each column without the slots inside the gap (their labels keep the real seconds)."""
    keep = [i for i, x in enumerate(xs) if not (gap and gap[0] < x < gap[1])]
    return [[column[i] for i in keep] for column in (xs, *columns)]


def _charts(state: live.LiveState, now: float, gap: tuple[int, int] | None = None) -> dict:
    series = series_from_buckets(state.buckets, now=now)
    hist_x, hist_y, hist_bin = retry_histogram(state.retry_hist, state.t0)
    hist_x, hist_y = _outside(gap, hist_x, hist_y)
    seconds, depth, in_flight, ok, fail = _outside(
        gap, series.seconds, series.depth, series.in_flight, series.ok, series.fail
    )
    axis = axis_seconds(state, now, gap) + (gap[1] - gap[0] if gap else 0)  # in real seconds
    per = f"per {series.bin_s} s" if series.bin_s > 1 else "per second"
    return {
        "series": series,
        "depth_chart": charts.line_chart(
            name="depth",
            title="Queue depth and jobs in flight over time",
            desc="Queue depth is arrivals minus starts so far; in flight is starts minus ends so far.",
            xs=seconds,
            lines=[("queue depth", "depth", depth), ("in flight", "inflight", in_flight)],
            x_label="seconds since the start",
            y_label="jobs",
            x_until=axis,
        ),
        "depth_legend": charts.legend([("queue depth", "depth"), ("in flight", "inflight")]),
        "throughput_chart": charts.bar_chart(
            name="throughput",
            title=f"Completions and failures {per}",
            desc="Stacked bars: attempts that succeeded and attempts that failed in each slot.",
            xs=seconds,
            bars=[("succeeded", "ok", ok), ("failed", "fail", fail)],
            x_label="seconds since the start",
            y_label=f"attempts {per}",
            x_until=axis,
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
            x_until=axis,
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
        # A stopped job says so even before the row does (the worker that ended the last job may not have
        # written the row yet when a Stop's answer is drawn).
        stopped = not experiment.scored or summary.get("stopped", 0) > 0
        ended = "Stopped early (not scored)" if stopped else "Finished"
        said.append(
            {
                "key": f"finished-{summary.get('redriven', 0)}",
                "text": f"{ended}: {summary.get('succeeded', 0)} succeeded, {summary.get('dead_lettered', 0)} "
                f"dead-lettered, {summary.get('double_charges', 0)} double charges; the latency SLO was {slo}.",
            }
        )
    return said


def run_end(state: live.LiveState) -> float:
    """When a finished run's last attempt ended (its axes end there, however late it is viewed)."""
    ends = [second for kind in ("end", "arr") for second in state.buckets.get(kind, {})]
    return float(max(ends, default=int(state.t0 or time.time())) + 1)


def live_view(experiment: Experiment, state: live.LiveState, *, with_links: bool = True) -> dict:
    """Everything the live view's panels show, from one read of the state."""
    now = run_end(state) if state.finished else time.time()
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
            "stats": stats(summary, None, model, experiment.preset),
            "explain": workflow_lessons(experiment.params, summary, experiment.seed)
            + explain(experiment.params, summary, None)
            if experiment.summary
            else [],
            "extras": {},
        }
    gap = idle_gap(experiment, state)
    drawn = _charts(state, now, gap)
    series = drawn.pop("series")
    lost = lost_jobs(experiment, state)
    rows = timeline(experiment, state, now, lost)
    drain = drain_seconds(state.buckets)
    return {
        **base,
        **drawn,
        "expired": False,
        "done": state.finished,
        "stats": stats(summary, state, model, experiment.preset),
        **delivery_panel(experiment, state, now),
        **workflow_panel(experiment, state, now, summary),
        "slo": slo_verdict(experiment.params, state.latencies.get("slo"), summary.get("succeeded", 0)),
        "timeline": rows,
        "lanes": charts.swimlanes(
            rows=rows,
            t0=state.t0,
            now=now,
            span=axis_seconds(state, now, gap),
            gap=gap,
            live=not state.finished,
            title="Each job's attempts on a time axis",
            desc="One lane per job: attempts as bars coloured by outcome, each retry's wait as a line, and the "
            "backoff window that wait was drawn from as a pale band. The job list below says the same in words.",
        ),
        "axis_gap": gap[1] - gap[0] if gap else 0,
        "dlq_rows": dlq_rows(experiment, state),
        "dlq_groups": dlq_groups(experiment, state),
        "dlq_more": max(0, len(state.dlq) - DLQ_ROWS),
        "can_fix": experiment.params.get("poison_rate", 0) > 0 and not state.consumer_fixed,
        "workers": workers(time.time()),
        "running_jobs": [
            {
                "job": job,
                "worker": info.get("worker", ""),
                "pid": info.get("pid"),
                "for_s": round(time.time() - info.get("since", time.time()), 1),
                "lost": job in lost,
            }
            for job, info in sorted(state.running.items())
        ],
        "events": events(state),
        "explain": workflow_lessons(experiment.params, summary, experiment.seed)
        + explain(
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
        "extras": {"peak_depth": series.peak_depth, "drain_s": drain, "retry_peak": drawn["retry_peak"]},
        "consumer_fixed": state.consumer_fixed,
        "announce": announcements(experiment, state, summary),
        "t0": datetime.fromtimestamp(state.t0, tz=UTC) if state.t0 else None,
    }
