"""The Lab's pages: HTTP glue over sandbox.experiments (actions) and sandbox.live (what is happening).

Every experiment is looked up through its owner, so another visitor gets a 404 for every page, fragment
and action. Redis errors propagate to prepsite.middleware, which answers 503 with a banner.
"""

import contextlib
import json
import math
import time
from datetime import UTC, datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING, HttpResponseClientRedirect
from rq import Worker
from rq.utils import utcparse

from prepsite.redis_conn import LAB_QUEUE, get_redis
from sandbox import charts, experiments, live
from sandbox.models import Experiment, Owner
from sandbox.params import MAX_JOBS, ExperimentForm
from sandbox.presets import DEFAULTS, PRESETS
from sandbox.workers import scheduler_alive

TIMELINE_JOBS = 30
DLQ_ROWS = 20
HISTORY_ROWS = 100
FAILED_MARKS = ("error", "timeout", "crash", "abandoned")
TOPIC = "queueing"
DRILL_FOR_PRESET = {
    "happy": "littles-law-capacity",
    "flaky": "retry-backoff-jitter",
    "poison": "poison-messages",
    "timeout": "visibility-timeout-vs-job-time",
    "crash": "consumer-crash-heartbeats",
    "duplicates": "idempotent-consumers",
    "spike": "backpressure-load-shedding",
    "slow-consumer": "littles-law-capacity",
}
EVENT_PILL = {
    "succeeded": "ok",
    "redriven": "ok",
    "dead_lettered": "err",
    "double_charge": "err",
    "retry_scheduled": "warn",
    "rejected": "warn",
    "stopped": "warn",
    "redelivered": "warn",
}


def owner_for(request: HttpRequest) -> Owner:
    """The visitor: their user id when logged in, and always their session (created on first visit)."""
    if not request.session.session_key:
        request.session["lab_visitor"] = True  # marks the session modified, so its cookie is sent
        request.session.save()
    user_id = request.user.pk if request.user.is_authenticated else None
    return Owner(user_id=user_id, session_key=request.session.session_key)


def owned_experiment(request: HttpRequest, pk: int) -> Experiment:
    return get_object_or_404(Experiment.objects.owned_by(owner_for(request)), pk=pk)


def study_url(section: str) -> str:
    return reverse("topics:topic_detail", args=[TOPIC]) + f"#{section}"


def drill_url(preset: str) -> str | None:
    slug = DRILL_FOR_PRESET.get(preset)
    return reverse("drills:question", args=[TOPIC, slug]) if slug else None


# ---------------------------------------------------------------- home, start, history, compare


def lab_status() -> dict:
    """Workers and scheduler as the home page shows them; touches Redis, so a dead Redis means 503."""
    redis = get_redis()
    return {
        "workers": Worker.count(connection=redis),
        "scheduler": scheduler_alive(redis, LAB_QUEUE),
    }


def home_context(request: HttpRequest, form: ExperimentForm, preset_name: str) -> dict:
    preset = PRESETS.get(preset_name) or PRESETS["happy"]
    cards = [
        {
            "preset": p,
            "params": p.parameters(),
            "study_url": study_url(p.section),
            "section_title": p.section.replace("-", " ").capitalize(),
            "chosen": p.name == preset.name,
        }
        for p in PRESETS.values()
    ]
    return {
        "nav": "lab",
        "cards": cards,
        "preset": preset,
        "form": form,
        "param_fields": [form[name] for name in [*DEFAULTS, "seed"]],
        "recent": Experiment.objects.owned_by(owner_for(request))[:5],
        "status": lab_status(),
    }


@require_GET
def lab_home(request: HttpRequest) -> HttpResponse:
    name = request.GET.get("preset", "happy")
    if name not in PRESETS:
        messages.warning(request, "There is no preset with that name; showing the happy path instead.")
        name = "happy"
    form = ExperimentForm.for_preset(name)
    context = {**home_context(request, form, name), "open_params": "preset" in request.GET}
    return render(request, "sandbox/home.html", context)


@require_POST
def start(request: HttpRequest) -> HttpResponse:
    form = ExperimentForm(data=request.POST)
    preset_name = request.POST.get("preset", "")
    template = "sandbox/home.html#start_panel" if request.htmx else "sandbox/home.html"
    if not form.is_valid():
        context = home_context(request, form, preset_name)
        return render(request, template, context, status=400)
    try:
        experiment = experiments.experiment_start(
            owner=owner_for(request),
            preset=form.cleaned_data["preset"],
            params=form.parameters(),
            seed=form.cleaned_data["seed"],
            prediction=form.cleaned_data["prediction"],
        )
    except experiments.LimitExceeded as exc:
        context = {**home_context(request, form, preset_name), "limit_message": str(exc)}
        return render(request, template, context, status=429)
    url = reverse("sandbox:detail", args=[experiment.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def outcome_of(experiment: Experiment) -> dict:
    """Counters and latency of an experiment: live while Redis has it, else the stored summary."""
    if experiment.status != Experiment.Status.RUNNING and experiment.summary:
        return {**experiment.summary, "expired": False}
    state = live.read(experiment.pk, events=0)
    if not state.exists:
        return {**(experiment.summary or {}), "expired": True}
    return {
        **{name: state.counters.get(name, 0) for name in live.COUNTERS},
        "p50_ms": state.latencies.get("p50"),
        "p95_ms": state.latencies.get("p95"),
        "max_ms": state.latencies.get("max"),
        "expired": False,
    }


@require_GET
def history(request: HttpRequest) -> HttpResponse:
    rows = [
        {"experiment": e, "outcome": outcome_of(e)}
        for e in Experiment.objects.owned_by(owner_for(request))[:HISTORY_ROWS]
    ]
    return render(request, "sandbox/history.html", {"nav": "lab", "rows": rows})


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
    ("p50_ms", "p50 (ms)"),
    ("p95_ms", "p95 (ms)"),
    ("max_ms", "max latency (ms)"),
]


def _pick_two(request: HttpRequest) -> list[int] | None:
    raw = [request.GET.get("a"), request.GET.get("b")]
    if not all(raw):
        raw = request.GET.getlist("id")
    if len(raw) != 2 or not all(v and v.isdigit() and len(v) < 12 for v in raw):
        return None
    return [int(v) for v in raw]


@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    ids = _pick_two(request)
    if ids is None:
        return render(
            request,
            "sandbox/compare.html",
            {"nav": "lab", "error": "Pick exactly two experiments to compare."},
            status=400,
        )
    a, b = (owned_experiment(request, pk) for pk in ids)
    out_a, out_b = outcome_of(a), outcome_of(b)
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
    outcomes = [
        {"name": label, "a": shown_a.get(key), "b": shown_b.get(key), "differs": shown_a.get(key) != shown_b.get(key)}
        for key, label in COMPARE_OUTCOMES
    ]
    context = {"nav": "lab", "a": a, "b": b, "params": params, "outcomes": outcomes}
    return render(request, "sandbox/compare.html", context)


# ---------------------------------------------------------------- the live view


def read_state(experiment: Experiment) -> live.LiveState:
    """One read of everything the panels show, the SLO's percentile included."""
    fraction = experiment.params.get("slo_percentile", 95) / 100
    return live.read(experiment.pk, events=30, slo_fraction=fraction)


def _slo(experiment: Experiment, state: live.LiveState) -> dict:
    params = experiment.params
    percentile = params.get("slo_percentile", 95)
    target_ms = params.get("slo_seconds", 10) * 1000
    observed = state.latencies.get("slo")
    return {
        "percentile": percentile,
        "target_ms": target_ms,
        "observed_ms": observed,
        "met": observed is not None and observed <= target_ms,
    }


def _plan_text(raw: bytes | None) -> str:
    if not raw:
        return ""
    try:
        intervals = json.loads(raw)
    except ValueError:
        return ""
    if not intervals:
        return "no retries"
    return "if it fails, retries after " + ", ".join(f"{s:g}s" for s in intervals)


def _timeline(experiment: Experiment, state: live.LiveState, now: float) -> list[dict]:
    enqueued = state.counters.get("enqueued", 0)
    first = [*sorted(state.running), *sorted(state.scheduled), *state.dlq]
    jobs = list(dict.fromkeys(first))[:TIMELINE_JOBS]
    for job in range(1, enqueued + 1):
        if len(jobs) >= TIMELINE_JOBS:
            break
        if job not in jobs:
            jobs.append(job)
    if not jobs:
        return []
    marks = live.job_marks(experiment.pk, jobs)
    plans = get_redis().hmget(live.key(experiment.pk, "plan"), [str(j) for j in jobs])
    dlq = set(state.dlq)
    rows = []
    for job, plan in zip(jobs, plans, strict=True):
        job_marks = [{**m, "label": "↺" if m.get("r") == "redriven" else m.get("n")} for m in marks.get(job, [])]
        failures = [m for m in job_marks if m.get("r") in FAILED_MARKS]
        if job in state.running:
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
                "attempts": sum(1 for m in job_marks if m.get("r") != "redriven"),
                "latest_error": failures[-1].get("e") if failures else "",
                "plan": _plan_text(plan),
                "retry_at": retry_at,
                "retry_in": max(0, math.ceil(retry_at - now)) if retry_at else None,
            }
        )
    return rows


def _dlq_rows(experiment: Experiment, state: live.LiveState) -> list[dict]:
    jobs = state.dlq[:DLQ_ROWS]
    marks = live.job_marks(experiment.pk, jobs) if jobs else {}
    rows = []
    for job in jobs:
        job_marks = marks.get(job, [])
        failures = [m for m in job_marks if m.get("r") in FAILED_MARKS]
        rows.append(
            {
                "job": job,
                "attempts": sum(1 for m in job_marks if m.get("r") != "redriven"),
                "last_error": failures[-1].get("e") if failures else "",
                "cause": failures[-1].get("r") if failures else "",
            }
        )
    return rows


def _workers(now: float) -> dict:
    """Every worker's state in two round trips (Worker.all() would cost three per worker)."""
    redis = get_redis()
    keys = sorted(key.decode() for key in redis.smembers(Worker.redis_workers_keys))
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, "state", "current_job", "last_heartbeat")
    rows = []
    for key, (state, job, beat) in zip(keys, pipe.execute(), strict=True):
        if state is None:
            continue  # registered but its hash expired: a dead worker
        age = now - utcparse(beat.decode()).replace(tzinfo=UTC).timestamp() if beat else None
        rows.append(
            {
                "name": key.removeprefix(Worker.redis_worker_namespace_prefix),
                "state": state.decode(),
                "job": job.decode() if job else "",
                "heartbeat_age": round(age, 1) if age is not None else None,
            }
        )
    return {"rows": rows, "scheduler": scheduler_alive(redis, LAB_QUEUE)}


def _events(state: live.LiveState) -> list[dict]:
    rows = []
    for event in state.events:
        details = {k: v for k, v in event.items() if k not in {"id", "t", "kind", "job"}}
        if len(details.get("worker", "")) > 12:
            details["worker"] = details["worker"][:8] + "…"  # RQ names are 32 hex digits; 8 tell them apart
        if "at" in details and state.t0:
            with contextlib.suppress(ValueError):
                details["at"] = f"+{float(details['at']) - state.t0:.0f}s"
        rows.append(
            {
                "t": float(event.get("t", 0)) - state.t0 if state.t0 else 0,
                "kind": event.get("kind", ""),
                "pill": EVENT_PILL.get(event.get("kind", ""), ""),
                "job": event.get("job", ""),
                "details": sorted(details.items()),
            }
        )
    return rows


def drain_seconds(buckets: dict[str, dict[int, int]]) -> int | None:
    """Seconds from the first arrival to the last attempt's end (whole seconds, as bucketed)."""
    arrivals, ends = buckets.get("arr"), buckets.get("end")
    if not arrivals or not ends:
        return None
    return max(ends) - min(arrivals) + 1


def explain(experiment: Experiment, counters: dict, peak_depth: int | None, drain_s: int | None = None) -> list[dict]:
    """What the parameters predict, next to what happened: one {topic, expected, observed} per effect."""
    p = {**DEFAULTS, **experiment.params}
    items = []
    requested = counters.get("requested", p["jobs"])
    admitted = min(p["jobs"], p["queue_cap"])
    if drain_s is not None:
        work = math.ceil(admitted / p["concurrency"]) * p["duration_ms"] / 1000
        floor = max(work, admitted / p["arrival_per_s"] if p["arrival_per_s"] > 0 else 0)
        items.append(
            {
                "topic": "Time to drain",
                "expected": f"at best ≈ {floor:.1f} s ({admitted} jobs × {p['duration_ms']} ms over {p['concurrency']} "
                "slots, or the arrival window if longer), plus every retry's wait",
                "observed": f"about {drain_s} s from the first arrival to the last attempt's end",
            }
        )
    if p["jobs"] > p["queue_cap"]:
        items.append(
            {
                "topic": "Load shedding",
                "expected": f"rejected = requested − queue_cap = {p['jobs']} − {p['queue_cap']} = {p['jobs'] - p['queue_cap']}",
                "observed": f"{counters.get('rejected', 0)} rejected at admission",
            }
        )
    fail = p["failure_rate"] + p["crash_rate"]
    poison, retries = p["poison_rate"], p["max_retries"]
    always_times_out = p["duration_ms"] - p["duration_spread_ms"] > p["timeout_s"] * 1000
    if always_times_out:
        share = 1.0
        why = f"every attempt runs {p['duration_ms']} ms ± {p['duration_spread_ms']} against a {p['timeout_s']} s timeout, so every attempt times out"
    else:
        share = poison + (1 - poison) * fail ** (retries + 1)
        why = f"poison share {poison:g} + (1 − {poison:g}) × {fail:g}^({retries}+1)"
    if share > 0:
        items.append(
            {
                "topic": "Dead-letter queue",
                "expected": f"DLQ share ≈ {why} = {share:.3g}, so about {share * admitted:.1f} of {admitted} jobs",
                "observed": f"{counters.get('dead_lettered', 0)} dead-lettered (after {counters.get('redriven', 0)} redriven)",
            }
        )
    if p["arrival_per_s"] > 0:
        lam = p["arrival_per_s"]
        service = max(p["duration_ms"], 1) / 1000
        capacity = p["concurrency"] / service
        window = admitted / lam
        growth = max(0.0, lam - capacity)
        items.append(
            {
                "topic": "Little's law",
                "expected": (
                    f"λ = {lam:g}/s, W = {service:g} s, so L = λW = {lam * service:.1f} jobs in service; capacity = "
                    f"concurrency / W = {p['concurrency']} / {service:g} = {capacity:.1f}/s. "
                    + (
                        f"Arrivals exceed capacity by {growth:.1f}/s for {window:.0f} s: peak depth ≈ {growth * window:.0f}."
                        if growth
                        else "Capacity exceeds arrivals: the queue should stay near empty."
                    )
                ),
                "observed": f"peak queue depth {peak_depth}" if peak_depth is not None else "depth history expired",
            }
        )
    if p["duplicate_rate"] > 0:
        dupes = p["duplicate_rate"] * admitted
        items.append(
            {
                "topic": "Duplicate delivery",
                "expected": f"about {dupes:.0f} duplicate deliveries; "
                + (
                    "idempotency on, so 0 double charges"
                    if p["idempotency"] == "on"
                    else f"idempotency off, so about {dupes:.0f} double charges"
                ),
                "observed": f"{counters.get('duplicates_delivered', 0)} delivered twice, {counters.get('duplicates_suppressed', 0)} suppressed, "
                f"{counters.get('double_charges', 0)} double charges",
            }
        )
    elif p["idempotency"] == "off":
        items.append(
            {
                "topic": "Idempotency off",
                "expected": "any redelivery or retry after the charge was written charges twice",
                "observed": f"{counters.get('double_charges', 0)} double charges",
            }
        )
    terminal = sum(counters.get(k, 0) for k in ("succeeded", "dead_lettered", "stopped"))
    items.append(
        {
            "topic": "Accounting",
            "expected": "requested = succeeded + dead-lettered + stopped + rejected (nothing silently lost)",
            "observed": f"{requested} = {counters.get('succeeded', 0)} + {counters.get('dead_lettered', 0)} + "
            f"{counters.get('stopped', 0)} + {counters.get('rejected', 0)}"
            + (" ✓" if requested == terminal + counters.get("rejected", 0) else " (discarded jobs leave the sum)"),
        }
    )
    return items


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
    ("attempts", "attempts", "minor"),
    ("retries", "retries", "minor"),
    ("timeouts", "timeouts", "minor"),
    ("crashes", "crashes", "minor"),
    ("recovered", "recovered", "minor"),
    ("redriven", "redriven", "minor"),
    ("discarded", "discarded", "minor"),
]


def stats(counters: dict, state: live.LiveState | None) -> list[dict]:
    values = dict(counters)
    if state is not None:
        values |= {"queued": state.queued, "running": len(state.running), "scheduled": len(state.scheduled)}
    return [
        {"key": key, "label": label, "value": values[key], "css": css} for key, label, css in STATS if key in values
    ]


def live_context(experiment: Experiment, state: live.LiveState) -> dict:
    """Everything the panels show, read once per poll."""
    now = time.time()
    preset = PRESETS.get(experiment.preset)
    base = {
        "experiment": experiment,
        "preset": preset,
        "state": state,
        "study_url": study_url(preset.section) if preset else None,
        "drill_url": drill_url(experiment.preset),
        "params": [(name, experiment.params.get(name)) for name in DEFAULTS],
    }
    if not state.exists:
        counters = experiment.summary or {}
        return {
            **base,
            "expired": True,
            "done": True,
            "counters": counters,
            "stats": stats(counters, None),
            "explain": explain(experiment, counters, None) if counters else [],
        }
    series = charts.series_from_buckets(state.buckets, now=now)
    hist_x, hist_y, hist_bin = charts.retry_histogram(state.retry_hist, state.t0)
    per = f"per {series.bin_s} s" if series.bin_s > 1 else "per second"
    done = state.finished and not state.running and not state.scheduled
    counters = state.counters
    return {
        **base,
        "expired": False,
        "done": done,
        "counters": counters,
        "stats": stats(counters, state),
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
        "slo": _slo(experiment, state),
        "timeline": _timeline(experiment, state, now),
        "dlq_rows": _dlq_rows(experiment, state),
        "dlq_more": max(0, len(state.dlq) - DLQ_ROWS),
        "workers": _workers(now),
        "running_jobs": [
            {
                "job": job,
                "worker": info.get("worker", ""),
                "pid": info.get("pid"),
                "for_s": round(now - info.get("since", now), 1),
            }
            for job, info in sorted(state.running.items())
        ],
        "events": _events(state),
        "explain": explain(experiment, counters, series.peak_depth, drain_seconds(state.buckets)) if done else [],
        "t0": datetime.fromtimestamp(state.t0, tz=UTC) if state.t0 else None,
    }


def _maybe_finish(experiment: Experiment, state: live.LiveState) -> None:
    if state.finished and experiment.is_running and experiments.finish_if_done(experiment.pk):
        experiment.refresh_from_db()


@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    state = read_state(experiment)
    _maybe_finish(experiment, state)
    context = {"nav": "lab", **live_context(experiment, state)}
    return render(request, "sandbox/detail.html", context)


def render_panels(
    request: HttpRequest, experiment: Experiment, *, flash: str = "", flash_error: bool = False, status: int = 200
) -> HttpResponse:
    state = read_state(experiment)
    _maybe_finish(experiment, state)
    context = {**live_context(experiment, state), "oob": True, "flash": flash, "flash_error": flash_error}
    if context["done"] and status == 200 and not flash:
        status = HTMX_STOP_POLLING
    return render(request, "sandbox/detail.html#panels", context, status=status)


@require_GET
def live_panels(request: HttpRequest, pk: int) -> HttpResponse:
    """The poll: every panel as an out-of-band swap; 286 (stop polling) once nothing can change."""
    experiment = owned_experiment(request, pk)
    if not request.htmx:
        return redirect("sandbox:detail", pk=experiment.pk)
    return render_panels(request, experiment)


def _job_index(request: HttpRequest, *, required: bool) -> int | HttpResponse | None:
    raw = request.POST.get("job", "").strip()
    if not raw:
        return HttpResponseBadRequest("Which job? The form needs a job number.") if required else None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_JOBS:
        return HttpResponseBadRequest(f"A job is a number from 1 to {MAX_JOBS}.")
    return int(raw)


def _after_action(request: HttpRequest, experiment: Experiment, text: str) -> HttpResponse:
    if request.htmx:
        return render_panels(request, experiment, flash=text)
    messages.info(request, text)
    return redirect("sandbox:detail", pk=experiment.pk)


def _limited(request: HttpRequest, experiment: Experiment, text: str) -> HttpResponse:
    """A shared-lab limit: 429 with the message, as a fragment for htmx or on the whole page."""
    if request.htmx:
        return render_panels(request, experiment, flash=text, flash_error=True, status=429)
    state = read_state(experiment)
    context = {"nav": "lab", **live_context(experiment, state), "flash": text, "flash_error": True}
    return render(request, "sandbox/detail.html", context, status=429)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@require_POST
def redrive(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    job = _job_index(request, required=False)
    if isinstance(job, HttpResponse):
        return job
    owner = owner_for(request)
    try:
        count = experiments.experiment_redrive(
            experiment, jobs=None if job is None else [job], who=str(owner.user_id or owner.session_key)
        )
    except experiments.LimitExceeded as exc:
        return _limited(request, experiment, str(exc))
    return _after_action(request, experiment, f"Redrove {_plural(count, 'job')} with a fresh retry budget.")


@require_POST
def discard(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    job = _job_index(request, required=False)
    if isinstance(job, HttpResponse):
        return job
    count = experiments.experiment_discard(experiment, jobs=None if job is None else [job])
    return _after_action(request, experiment, f"Discarded {_plural(count, 'job')} from the DLQ.")


def _running_job_action(request: HttpRequest, pk: int, action, done: str, verb: str) -> HttpResponse:
    """Crash or stop one running job of the visitor's experiment."""
    experiment = owned_experiment(request, pk)
    job = _job_index(request, required=True)
    if isinstance(job, HttpResponse):
        return job
    text = done.format(job=job) if action(experiment, job) else f"Job {job} is not running any more; nothing to {verb}."
    return _after_action(request, experiment, text)


@require_POST
def crash(request: HttpRequest, pk: int) -> HttpResponse:
    done = "Job {job}'s work-horse will be killed (SIGKILL) within a second."
    return _running_job_action(request, pk, experiments.job_crash, done, "crash")


@require_POST
def stop_job(request: HttpRequest, pk: int) -> HttpResponse:
    return _running_job_action(request, pk, experiments.job_stop, "Job {job} will stop at its next checkpoint.", "stop")


@require_POST
def stop(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    experiments.experiment_stop(experiment)
    return _after_action(request, experiment, "Stopping: unfinished jobs end as 'stopped' when a worker picks them up.")
