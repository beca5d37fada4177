"""The pipeline and priority families in the live view (sandbox.workflows.pipeline, .priority): each stage's queue
depth and oldest age on one time axis, urgent latency beside low-priority throughput, and their arithmetic."""

from django.utils.html import format_html

from prepsite import charts
from prepsite.redis_conn import get_redis
from sandbox.engine import live
from sandbox.models import Experiment
from sandbox.workflows import pipeline, priority

PIPELINE_STATS = [
    ("done_stage1", "items the front handed on"),
    ("shed", "shed at the front"),
    ("max_depth_stage2", "deepest queue before stage 2"),
    ("max_depth_stage3", "deepest queue before stage 3"),
    ("max_age_ms_stage2", "oldest item before stage 2 (ms)"),
    ("max_age_ms_stage3", "oldest item before stage 3 (ms)"),
    ("done_stage3", "items through stage 3"),
    ("stage_dead", "items whose stage retries ran out"),
]
STAGE_LINES = [(2, "before stage 2", "p0"), (3, "before stage 3", "p1")]


def pipeline_panel(experiment: Experiment, state: live.LiveState | None, now: float, summary: dict) -> dict:
    """Each later stage's queue depth and its oldest item's age, per second, on one time axis."""
    peaks = pipeline.series(experiment.pk, get_redis())
    seconds_seen = [second for values in peaks.values() for second in values]
    origin = int(state.t0) if state is not None and state.t0 else min(seconds_seen, default=int(now))
    last = max(seconds_seen, default=origin)
    span = max(1, (last if state is None or state.finished else int(now)) - origin + 1)
    xs = list(range(span))

    def line(name: str, scale: float = 1) -> list[int]:
        values = peaks.get(name, {})
        out, held = [], 0
        for x in xs:  # a second without a push, take or sample keeps the last value
            held = values.get(origin + x, held)
            out.append(round(held / scale, 1) if scale != 1 else held)
        return out

    depth = charts.line_chart(
        name="pipeline-depth",
        title="Items waiting before stages 2 and 3, per second",
        desc="The deepest each stage's queue was in each second since the start. A queue that climbs while "
        "the other stays low is where the backlog builds; a flat top at the bound is back-pressure.",
        xs=xs,
        lines=[(label, css, line(f"d{stage}")) for stage, label, css in STAGE_LINES],
        x_label="seconds since the start",
        y_label="items waiting",
        x_until=span,
    )
    age = charts.line_chart(
        name="pipeline-age",
        title="The oldest waiting item's age before stages 2 and 3, per second (s)",
        desc="How long the oldest item in each queue had waited, on the same time axis as the depth above: "
        "an unbounded queue's oldest item ages for as long as the queue grows.",
        xs=xs,
        lines=[(label, css, line(f"a{stage}", 1000)) for stage, label, css in STAGE_LINES],
        x_label="seconds since the start",
        y_label="oldest item's age (s)",
        x_until=span,
    )
    bad = ("shed", "stage_dead")
    return {
        "workflow": {
            "kind": "pipeline",
            "stats": [
                {
                    "key": key,
                    "label": label,
                    "value": summary.get(key, 0),
                    "css": "err" if key in bad and summary.get(key) else "",
                }
                for key, label in PIPELINE_STATS
            ],
            "chart": format_html("{}{}", depth, age),
            "legend": charts.legend([(label, css) for _, label, css in STAGE_LINES]),
        }
    }


def pipeline_lessons(params: dict, summary: dict) -> list[dict]:
    arrive = params["arrival_per_s"]
    serve = 1000 / params["slow_stage_ms"] if params["slow_stage_ms"] else float("inf")
    jobs = summary.get("enqueued", 0)
    left_s = max(0.0, (jobs - 1) / arrive - params["slow_at_s"]) if arrive else 0.0
    growth = max(0.0, arrive - serve) if arrive else 0.0
    peak = growth * left_s if arrive else max(0, jobs - 1)
    bound = params["stage_bound"]
    items = [
        {
            "topic": "Where the backlog builds",
            "expected": f"before stage 3 once it slows: it serves 1000 ÷ {params['slow_stage_ms']} = {serve:.1f} items "
            f"a second while {arrive:g} arrive, so its queue grows by about {growth:.1f} a second for the "
            f"{left_s:.1f} s of arrivals left: about {peak:.0f} deep"
            + (f", but the bound stops it at {bound}" if bound else ""),
            "observed": f"deepest before stage 3: {summary['max_depth_stage3']}, before stage 2: "
            f"{summary['max_depth_stage2']}; the backlog built before stage {summary.get('backlog_stage', 0)}",
        },
        {
            "topic": "How old the oldest item got",
            "expected": f"about depth × {params['slow_stage_ms']} ms at stage 3: "
            f"{min(peak, bound or peak):.0f} × {params['slow_stage_ms'] / 1000:g} ≈ "
            f"{min(peak, bound or peak) * params['slow_stage_ms'] / 1000:.1f} s",
            "observed": f"{summary['max_age_ms_stage3']} ms before stage 3, {summary['max_age_ms_stage2']} ms before "
            "stage 2",
        },
        {
            "topic": "The front",
            "expected": "unbounded: it accepts everything (0 shed), whatever happens behind it"
            if not bound
            else f"bounded at {bound}: once both queues are full the front sheds what stage 3 cannot take",
            "observed": f"{summary['shed']} shed, {summary['done_stage1']} handed on, {summary['done_stage3']} through "
            f"stage 3, {summary.get('pl_stopped', 0)} stopped in a queue",
        },
    ]
    return items


PRIORITY_STATS = [
    ("urgent_done", "urgent jobs done"),
    ("urgent_p95_ms", "urgent p95 (ms)"),
    ("urgent_max_ms", "urgent max (ms)"),
    ("low_done", "low-priority jobs done"),
    ("low_p95_ms", "low-priority p95 (ms)"),
    ("low_throughput", "low-priority jobs a minute"),
]


def priority_panel(experiment: Experiment, summary: dict) -> dict:
    """Urgent latency and low-priority throughput side by side (the time axis is the job lanes above)."""
    slow = summary.get("urgent_p95_ms", 0) > 10 * experiment.params["urgent_ms"]
    return {
        "workflow": {
            "kind": "priority",
            "stats": [
                {
                    "key": key,
                    "label": label,
                    "value": summary.get(key, 0),
                    "css": "err" if key == "urgent_p95_ms" and slow else "",
                }
                for key, label in PRIORITY_STATS
            ],
            "chart": "",
            "legend": "",
        }
    }


def priority_lessons(params: dict, summary: dict) -> list[dict]:
    slots, reserved = params["concurrency"], params["reserved"]
    jobs = summary.get("enqueued", 0)
    urgent = sum(1 for job in range(1, jobs + 1) if priority.is_urgent(params, job))
    low = jobs - urgent
    work = low * params["duration_ms"] / 1000
    low_slots = max(1, slots - reserved) if reserved else slots
    return [
        {
            "topic": "Urgent jobs",
            "expected": f"{urgent} urgent jobs of {params['urgent_ms']} ms; "
            + (
                f"no slot reserved, so each waits for one of {slots} slots held by a {params['duration_ms']} ms job, "
                "and behind every low-priority job that arrived before it (oldest first): seconds, not milliseconds"
                if not reserved
                else f"{reserved} slot reserved: each waits only for another urgent job, so p95 is about its own work "
                "plus RQ's pickup"
            ),
            "observed": f"p95 {summary['urgent_p95_ms']} ms, max {summary['urgent_max_ms']} ms",
        },
        {
            "topic": "Low-priority throughput",
            "expected": f"{low} jobs × {params['duration_ms'] / 1000:g} s = {work:g} s of work on {low_slots} slot"
            f"{'s' if low_slots != 1 else ''}: about {60 * low_slots / (params['duration_ms'] / 1000 or 1):.0f} a "
            "minute once they queue (at most your fair share of the workers)",
            "observed": f"{summary['low_throughput']} a minute, p95 {summary['low_p95_ms']} ms",
        },
    ]
