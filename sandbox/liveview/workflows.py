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
from sandbox.models import Experiment
from sandbox.workflows import outbox, saga
from sandbox.workflows.models import OutboxMessage, Saga, WorkflowEffect, WorkflowOrder
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


def _saga_lanes(lanes: dict[int, list[dict]], states: dict[int, str], origin: float, end: float) -> SafeString:
    """One lane per saga on a time axis: each step done (R, C, S), the one that failed, each compensation
    (lower case) and each compensation that failed, with the saga's end state at the right."""
    width, left, right, lane_h, top = 640, 64, 190, 18, 8
    span = max(1.0, end - origin)
    plot = width - left - right
    height = top + lane_h * max(1, len(lanes)) + 26
    parts = []
    for row, (number, actions) in enumerate(sorted(lanes.items())):
        y = top + row * lane_h
        parts.append(format_html('<text class="lane-label" x="4" y="{}">saga {}</text>', y + 12, number))
        parts.append(
            format_html('<line class="lane" x1="{}" x2="{}" y1="{}" y2="{}"></line>', left, left + plot, y + 8, y + 8)
        )
        x = -1e9
        for act in actions:
            # On the time axis, but never on top of the saga's previous mark: steps take milliseconds.
            x = max(left + 6 + (plot - 6) * min(1.0, max(0.0, act["at"] - origin) / span), x + 15)
            letter = LETTER[act["step"]] if act["action"] in ("do", "fail") else LETTER[act["step"]].lower()
            parts.append(
                format_html(
                    '<g class="saga-{}"><title>{} {}</title><rect x="{}" y="{}" width="13" height="14" rx="2">'
                    '</rect><text x="{}" y="{}">{}</text></g>',
                    act["action"],
                    act["step"],
                    ACTION[act["action"]],
                    f"{x - 6:.1f}",
                    y + 1,
                    f"{x - 2.5:.1f}",
                    y + 12,
                    letter,
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
            '<text class="axis-label" x="{}" y="{}">seconds since the first saga (0 to {} s)</text>',
            left,
            height - 6,
            f"{span:.1f}",
        )
    )
    return format_html(
        '<svg class="chart saga-lanes" viewBox="0 0 {} {}" role="img" aria-labelledby="saga-t saga-d">'
        '<title id="saga-t">Each saga\'s steps and compensations on a time axis</title><desc id="saga-d">One lane per '
        "saga: R, C, S are reserve, charge and ship done; a red letter is the step that failed for good; lower case "
        "letters are compensations, newest step first; red outlines are compensation attempts that failed and were "
        "retried. The list below says the same in words.</desc>{}</svg>",
        width, height, SafeString("".join(parts)),
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
    if not is_workflow(params) or ("sagas" if params["workflow"] == "saga" else "lost") not in summary:
        return []
    jobs = summary.get("enqueued", 0)
    planned = [outbox.faults(params, seed, job, 1) for job in range(1, jobs + 1)]
    crashes = sum(1 for crash, _ in planned if crash)
    rollbacks = sum(1 for _, rollback in planned if rollback)
    kind = params["workflow"]
    if kind == "saga":
        return saga_lessons(params, summary, seed, jobs)
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
    return [(key, label) for key, label in STATS + SAGA_STATS if any(key in outcome for outcome in outcomes)]
