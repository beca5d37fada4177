"""The workflow families in the live view: what happened between the database, the broker and the consumer,
on one time axis, and the arithmetic that explains it (sandbox.workflows)."""

import bisect
import math

from django.db import connection
from django.utils.html import format_html
from django.utils.safestring import SafeString

from prepsite import charts
from prepsite.redis_conn import get_redis
from sandbox.engine import live
from sandbox.liveview.stages import (
    PIPELINE_STATS,
    PRIORITY_STATS,
    pipeline_lessons,
    pipeline_panel,
    priority_lessons,
    priority_panel,
)
from sandbox.models import Experiment
from sandbox.workflows import outbox, saga
from sandbox.workflows.models import FanInChild, FanInFinal, OutboxMessage, Saga, WorkflowEffect, WorkflowOrder
from sandbox.workflows.run import is_workflow

LISTED = 12  # orders named per kind of trouble


def _cumulative(times: list[float], origin: float, seconds: int) -> list[int]:
    times = sorted(times)
    return [bisect.bisect_right(times, origin + s + 1) for s in range(seconds)]


STATS = [
    ("orders", "orders committed"),
    ("events_published", "events published"),
    ("lost", "lost events"),
    ("ghosts", "ghost events"),
    ("duplicates", "duplicate events"),
    ("double_effects", "double effects"),
    ("relay_lag_p95_ms", "relay lag p95 (ms)"),
    ("relay_lag_max_ms", "relay lag max (ms)"),
]


SAGA_STATS = [
    ("sagas", "sagas started"),
    ("completed", "completed"),
    ("compensated", "compensated"),
    ("needs_human", "in the DLQ: needs a human"),
    ("half_done", "half done"),
    ("compensations_failed", "compensation attempts failed"),
    ("out_of_order_compensations", "undone out of order"),
]
SAGA_LANES = 20
LETTER = {"reserve": "R", "charge": "C", "ship": "S"}
ACTION = {"do": "done", "fail": "failed for good", "undo": "compensated", "undo_failed": "compensation failed"}


def _lanes(
    lanes: dict[int, list[dict]], states: dict[int, str], origin: float, end: float, *, noun: str, title: str, desc: str
) -> SafeString:
    """One lane per saga or batch on a time axis, its marks ({at, css, letter, title}) in order and its end state
    at the right. Marks sit at their time but never on top of the lane's previous one (steps take milliseconds)."""
    width, left, right, lane_h, top = 640, 64, 190, 18, 8
    span = max(1.0, end - origin)
    plot = width - left - right
    height = top + lane_h * max(1, len(lanes)) + 26
    parts = []
    for row, (number, marks) in enumerate(sorted(lanes.items())):
        y = top + row * lane_h
        parts.append(format_html('<text class="lane-label" x="4" y="{}">{} {}</text>', y + 12, noun, number))
        parts.append(
            format_html('<line class="lane" x1="{}" x2="{}" y1="{}" y2="{}"></line>', left, left + plot, y + 8, y + 8)
        )
        x = -1e9
        for mark in marks:
            x = max(left + 6 + (plot - 6) * min(1.0, max(0.0, mark["at"] - origin) / span), x + 15)
            parts.append(
                format_html(
                    '<g class="{}"><title>{}</title><rect x="{}" y="{}" width="13" height="14" rx="2"></rect>'
                    '<text x="{}" y="{}">{}</text></g>',
                    mark["css"],
                    mark["title"],
                    f"{x - 6:.1f}",
                    y + 1,
                    f"{x - 2.5:.1f}",
                    y + 12,
                    mark["letter"],
                )
            )
        parts.append(
            format_html(
                '<text class="lane-state" x="{}" y="{}">{}</text>',
                f"{max(left + plot + 8, x + 12):.1f}",
                y + 12,
                states.get(number, ""),
            )
        )
    parts.append(
        format_html(
            '<text class="axis-label" x="{}" y="{}">seconds since the first {} (0 to {} s)</text>',
            left,
            height - 6,
            noun,
            f"{span:.1f}",
        )
    )
    return format_html(
        '<svg class="chart saga-lanes" viewBox="0 0 {} {}" role="img" aria-labelledby="lanes-wt lanes-wd">'
        '<title id="lanes-wt">{}</title><desc id="lanes-wd">{}</desc>{}</svg>',
        width, height, title, desc, SafeString("".join(parts)),
    )  # fmt: skip


def _saga_lanes(lanes: dict[int, list[dict]], states: dict[int, str], origin: float, end: float) -> SafeString:
    marks = {
        n: [
            {
                "at": act["at"],
                "css": f"saga-{act['action']}",
                "title": f"{act['step']} {ACTION[act['action']]}",
                "letter": LETTER[act["step"]] if act["action"] in ("do", "fail") else LETTER[act["step"]].lower(),
            }
            for act in actions
        ]
        for n, actions in lanes.items()
    }
    return _lanes(
        marks, states, origin, end, noun="saga",
        title="Each saga's steps and compensations on a time axis",
        desc="One lane per saga: R, C, S are reserve, charge and ship done; a red letter is the step that failed for "
        "good; lower case letters are compensations, newest step first; red outlines are compensation attempts that "
        "failed and were retried. The list below says the same in words.",
    )  # fmt: skip


def saga_panel(experiment: Experiment, state: live.LiveState | None, now: float, summary: dict) -> dict:
    lanes = saga.timeline(experiment.pk, SAGA_LANES)
    states = dict(Saga.objects.filter(experiment=experiment, number__lte=SAGA_LANES).values_list("number", "state"))
    dlq = set(state.dlq) if state is not None else set()
    states = {n: ("needs a human (DLQ)" if n in dlq and s == "compensating" else s) for n, s in states.items()}
    times = [act["at"] for actions in lanes.values() for act in actions]
    origin = state.t0 if state is not None and state.t0 else min(times, default=now)
    return {
        "workflow": {
            "kind": "saga",
            "legend": "",
            "stats": [
                {
                    "key": key,
                    "label": label,
                    "value": summary.get(key, 0),
                    "css": "err"
                    if key in ("half_done", "out_of_order_compensations", "needs_human") and summary.get(key)
                    else "",
                }
                for key, label in SAGA_STATS
            ],
            "chart": _saga_lanes(lanes, states, origin, max(times, default=now)),
            "sagas": [
                {
                    "number": number,
                    "state": states.get(number, ""),
                    "story": ", ".join(f"{a['step']} {ACTION[a['action']]}" for a in actions),
                }
                for number, actions in sorted(lanes.items())
            ],
        }
    }


def workflow_panel(experiment: Experiment, state: live.LiveState | None, now: float, summary: dict) -> dict:
    """Orders committed, events published and effects done over time, and which orders went wrong how."""
    if not is_workflow(experiment.params):
        return {}
    if experiment.params["workflow"] == "saga":
        return saga_panel(experiment, state, now, summary)
    if experiment.params["workflow"] == "fan_in":
        return fan_in_panel(experiment, state, now, summary)
    if experiment.params["workflow"] == "pipeline":
        return pipeline_panel(experiment, state, now, summary)
    if experiment.params["workflow"] == "priority":
        return priority_panel(experiment, summary)
    redis = get_redis()
    orders = dict(WorkflowOrder.objects.filter(experiment=experiment).values_list("order_number", "created_at"))
    entries = [(float(f[b"t"]), int(f[b"order"])) for _, f in redis.xrange(live.key(experiment.pk, outbox.BUS))]
    effects = list(WorkflowEffect.objects.filter(experiment=experiment).values_list("created_at", flat=True))
    unsent = set(
        OutboxMessage.objects.filter(experiment=experiment, sent_at__isnull=True).values_list("order_number", flat=True)
    )
    published: dict[int, int] = {}
    for _, order in entries:
        published[order] = published.get(order, 0) + 1
    committed = [at.timestamp() for at in orders.values()]
    origin = state.t0 if state is not None and state.t0 else min(committed, default=now)
    last = max([*committed, *(t for t, _ in entries), *(at.timestamp() for at in effects)], default=origin)
    seconds = max(1, math.ceil((last if state is None or state.finished else now) - origin) + 1)
    xs = list(range(seconds))
    lines = [
        ("orders committed", "committed", _cumulative(committed, origin, seconds)),
        ("events published", "published", _cumulative([t for t, _ in entries], origin, seconds)),
        ("consumer effects", "effects", _cumulative([at.timestamp() for at in effects], origin, seconds)),
    ]
    lost = sorted(set(orders) - set(published) - unsent)
    ghosts = sorted(set(published) - set(orders))
    duplicated = sorted(order for order, times in published.items() if times > 1)
    return {
        "workflow": {
            "kind": experiment.params["workflow"],
            "stats": [
                {
                    "key": key,
                    "label": label,
                    "value": summary.get(key, 0),
                    "css": "err" if key in ("lost", "ghosts", "double_effects") and summary.get(key) else "",
                }
                for key, label in STATS
                if experiment.params["workflow"] == "outbox" or not key.startswith("relay")
            ],
            "chart": charts.line_chart(
                name="workflow",
                title="Orders committed, events published and consumer effects, cumulative",
                desc="Three running totals per second since the first request. A gap between orders and events "
                "that never closes is lost events; events above orders are ghosts or duplicates.",
                xs=xs,
                lines=lines,
                x_label="seconds since the first request",
                y_label="running total",
            ),
            "legend": charts.legend([(label, css) for label, css, _ in lines]),
            "rows": [
                {"key": "lost", "label": "Lost: order saved, event never published", "orders": lost},
                {"key": "ghosts", "label": "Ghosts: event published, order rolled back", "orders": ghosts},
                {"key": "duplicates", "label": "Published more than once", "orders": duplicated},
                {"key": "unsent", "label": "Still in the outbox, not yet published", "orders": sorted(unsent)},
            ],
            "listed": LISTED,
        }
    }


def workflow_lessons(params: dict, summary: dict, seed: int) -> list[dict]:
    """The explanation's workflow items: the fault plan's own counts beside what the run showed."""
    needs = {"saga": "sagas", "fan_in": "batches", "pipeline": "done_stage1", "priority": "urgent_done"}.get(
        params["workflow"], "lost"
    )
    if not is_workflow(params) or needs not in summary:
        return []
    if params["workflow"] == "pipeline":
        return pipeline_lessons(params, summary)
    if params["workflow"] == "priority":
        return priority_lessons(params, summary)
    jobs = summary.get("enqueued", 0)
    planned = [outbox.faults(params, seed, job, 1) for job in range(1, jobs + 1)]
    crashes = sum(1 for crash, _ in planned if crash)
    rollbacks = sum(1 for _, rollback in planned if rollback)
    kind = params["workflow"]
    if kind == "saga":
        return saga_lessons(params, summary, seed, jobs)
    if kind == "fan_in":
        return fan_in_lessons(params, summary, seed, jobs)
    items = [
        {
            "topic": "The fault plan",
            "expected": f"{jobs} requests × {params['commit_crash_rate']:g} ≈ {jobs * params['commit_crash_rate']:.1f} "
            f"die after their COMMIT; the seed picked {crashes}. About "
            f"{jobs * (1 - params['commit_crash_rate']) * params['rollback_rate']:.1f} roll back; it picked {rollbacks}",
            "observed": f"{summary.get('crashes', 0)} work-horses SIGKILLed, {summary.get('dead_lettered', 0)} requests "
            f"failed (no retries: {crashes} + {rollbacks})",
        }
    ]
    if kind == "dual_write" and params["publish_at"] == "on_commit":
        items.append(
            {
                "topic": "Lost events",
                "expected": f"every request that dies between its COMMIT and its publish: {crashes}; ghosts 0 (a "
                "rolled-back transaction never reaches on_commit)",
                "observed": f"lost {summary['lost']}, ghosts {summary['ghosts']}",
            }
        )
    elif kind == "dual_write":
        items.append(
            {
                "topic": "Ghost events",
                "expected": f"every transaction that rolls back after its publish: {rollbacks}; lost 0 (the event "
                "left before the COMMIT)",
                "observed": f"ghosts {summary['ghosts']}, lost {summary['lost']}",
            }
        )
    else:
        items.append(
            {
                "topic": "Lost and ghost events",
                "expected": "0 and 0: the event row commits or rolls back with its order, and the relay publishes "
                f"every committed row; {jobs} − {rollbacks} rolled back = {jobs - rollbacks} orders to publish",
                "observed": f"lost {summary['lost']}, ghosts {summary['ghosts']}, orders {summary['orders']}, "
                f"events {summary['events_published']}",
            }
        )
        items.append(
            {
                "topic": "Duplicates",
                "expected": "each relay death after publishing and before marking sent republishes its claimed rows "
                f"(up to {outbox.BATCH} a pass, at most {outbox.MAX_RELAY_CRASHES} deaths a run)",
                "observed": f"{summary['duplicates']} events published twice; the "
                f"{'idempotent' if params['idempotency'] == 'on' else 'non-idempotent'} consumer acted twice on "
                f"{summary['double_effects']}",
            }
        )
        items.append(
            {
                "topic": "Relay lag",
                "expected": "up to about one poll interval (1 s, RQ's scheduler) after the COMMIT, longer after a "
                f"relay death (its retry waits 1 s{'' if connection.features.has_select_for_update_skip_locked else ', then a 2 s lease on SQLite'})",
                "observed": f"p95 {summary['relay_lag_p95_ms']} ms, max {summary['relay_lag_max_ms']} ms",
            }
        )
    return items


def saga_lessons(params: dict, summary: dict, seed: int, jobs: int) -> list[dict]:
    p, q, tries = params["step_fail_rate"], params["compensation_fail_rate"], params["max_retries"] + 1
    complete = (1 - p) ** len(saga.STEPS)
    failed_at = [
        next((s for s in saga.STEPS if saga.fails_for_good(params, seed, n, s)), None) for n in range(1, jobs + 1)
    ]
    undo_work = sum(saga.STEPS.index(step) for step in failed_at if step)
    return [
        {
            "topic": "Completed or compensated",
            "expected": f"each of 3 steps survives with 1 − {p:g}: (1 − {p:g})³ = {complete:.2f}, so about "
            f"{jobs * complete:.1f} of {jobs} complete (the seed: {failed_at.count(None)}); the rest compensate "
            f"the {undo_work} steps they had done",
            "observed": f"{summary['completed']} completed, {summary['compensated']} compensated, "
            f"{summary['compensations_done']} compensations run",
        },
        {
            "topic": "Needs a human",
            "expected": f"a compensation fails {tries} times in a row with {q:g}^{tries} = {q**tries:.3f} per step "
            f"to undo (1 + {params['max_retries']} retries): about {undo_work * q**tries:.1f} sagas in the DLQ",
            "observed": f"{summary['needs_human']} in the DLQ, {summary['compensations_failed']} compensation attempts "
            "failed and were retried",
        },
        {
            "topic": "Never half-done",
            "expected": "0: every saga ends completed, fully compensated newest step first, or in the DLQ flagged for "
            "a human; a retry resumes from the saga's row, so no step runs twice",
            "observed": f"half done {summary['half_done']}, undone out of order {summary['out_of_order_compensations']}",
        },
    ]


def compare_rows(*outcomes: dict) -> list[tuple[str, str]]:
    """(key, label) of the workflow counters either run reports, for the compare page."""
    rows = STATS + SAGA_STATS + FAN_IN_STATS + PIPELINE_STATS + PRIORITY_STATS
    return [(key, label) for key, label in rows if any(key in outcome for outcome in outcomes)]


FAN_IN_STATS = [
    ("batches", "batches"),
    ("children_done", "children done"),
    ("children_dead", "children dead (DLQ)"),
    ("child_deliveries", "child deliveries"),
    ("final_runs", "final steps run"),
    ("early_finals", "finals run early"),
    ("batches_finalized_twice", "batches closed twice"),
    ("batches_stuck", "batches stuck on a dead child"),
]


def fan_in_panel(experiment: Experiment, state: live.LiveState | None, now: float, summary: dict) -> dict:
    """Each batch's children finishing and its final step(s), on one time axis."""
    lanes: dict[int, list[dict]] = {}
    children = FanInChild.objects.filter(experiment=experiment, batch__lte=SAGA_LANES).order_by("at")
    for batch, child, status, at in children.values_list("batch", "child", "status", "at"):
        done = status == "done"
        lanes.setdefault(batch, []).append(
            {"at": at, "css": "saga-do" if done else "saga-fail", "letter": str(child % 10),
             "title": f"child {child} {'done' if done else 'dead: retries used up'}"}
        )  # fmt: skip
    for batch, at, early in FanInFinal.objects.filter(experiment=experiment, batch__lte=SAGA_LANES).values_list(
        "batch", "at", "early"
    ):
        lanes.setdefault(batch, []).append(
            {"at": at, "css": "saga-fail" if early else "saga-final", "letter": "F",
             "title": "final step, before every child was done" if early else "final step"}
        )  # fmt: skip
    for marks in lanes.values():
        marks.sort(key=lambda mark: mark["at"])
    finals: dict[int, int] = {}
    for batch in FanInFinal.objects.filter(experiment=experiment).values_list("batch", flat=True):
        finals[batch] = finals.get(batch, 0) + 1
    states = {n: f"final ran {finals.get(n, 0)}×" for n in lanes}
    times = [mark["at"] for marks in lanes.values() for mark in marks]
    origin = state.t0 if state is not None and state.t0 else min(times, default=now)
    return {
        "workflow": {
            "kind": "fan_in",
            "legend": "",
            "stats": [
                {
                    "key": key,
                    "label": label,
                    "value": summary.get(key, 0),
                    "css": "err" if key in ("early_finals", "batches_finalized_twice") and summary.get(key) else "",
                }
                for key, label in FAN_IN_STATS
            ],
            "chart": _lanes(
                lanes,
                states,
                origin,
                max(times, default=now),
                noun="batch",
                title="Each batch's children and final step on a time axis",
                desc="One lane per batch: a green number is a child done, a red one a child whose retries ran out; F is "
                "the batch's final step, red when it ran before every child was done. A batch should show F once, "
                "after its last child.",
            ),
            "sagas": [
                {"number": n, "state": states[n], "story": ", ".join(m["title"] for m in marks)}
                for n, marks in sorted(lanes.items())
            ],
        }
    }


def fan_in_lessons(params: dict, summary: dict, seed: int, jobs: int) -> list[dict]:
    n, f, d, tries = (
        params["fan_out"],
        params["child_fail_rate"],
        params["child_duplicate_rate"],
        params["max_retries"] + 1,
    )
    naive = params["fan_in"] == "naive"
    return [
        {
            "topic": "Children",
            "expected": f"{jobs} batches × {n} = {jobs * n} children; one dies when all {tries} attempts fail: "
            f"{f:g}^{tries} = {f**tries:.3f} each, about {jobs * n * f**tries:.1f}; about {jobs * n * d:.1f} are "
            "delivered twice",
            "observed": f"{summary['children_done']} done, {summary['children_dead']} dead, "
            f"{summary['child_deliveries']} deliveries in all (retries and duplicates included)",
        },
        {
            "topic": "The final step",
            "expected": (
                "naive: a duplicate delivery counts twice, so a batch with one reaches its size a child early (the "
                "final runs early) and again when the last child arrives; two children finishing together can both "
                "see the size"
                if naive
                else f"atomic: exactly once per batch whose children all finished: {summary['batches']} − "
                f"{summary['batches_stuck']} stuck = {summary['batches'] - summary['batches_stuck']}, never early"
            ),
            "observed": f"{summary['final_runs']} finals, {summary['early_finals']} early, "
            f"{summary['batches_finalized_twice']} batches closed more than once",
        },
    ]
