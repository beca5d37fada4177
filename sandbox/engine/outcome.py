"""A run's outcome, one definition: counters, latency, the SLO verdict and peak lag.

Stored on the Experiment row when the run finishes (sandbox.engine.experiments) and shown by every view of
it (sandbox.liveview.readmodel, the CLI).
"""

import time

from redis import Redis

from sandbox.engine import live
from sandbox.engine.presets import DEFAULTS
from sandbox.engine.series import drain_seconds, series_from_buckets
from sandbox.models import Experiment


def read_state(experiment: Experiment, *, events: int = 0, connection: Redis | None = None) -> live.LiveState:
    """One read of the experiment's live state, its SLO's percentile included."""
    fraction = experiment.params.get("slo_percentile", DEFAULTS["slo_percentile"]) / 100
    return live.read(experiment.pk, events=events, slo_fraction=fraction, connection=connection)


def slo_verdict(params: dict, observed_ms: float | None, succeeded: int | None = None) -> dict:
    """met: the percentile is within target and, when `succeeded` is given, something succeeded: a run whose
    every job was dead-lettered or stopped quickly has met no latency objective."""
    percentile = params.get("slo_percentile", DEFAULTS["slo_percentile"])
    target_ms = params.get("slo_seconds", DEFAULTS["slo_seconds"]) * 1000
    within = observed_ms is not None and observed_ms <= target_ms
    met = within and (succeeded is None or succeeded > 0)
    return {
        "percentile": percentile,
        "target_ms": target_ms,
        "observed_ms": observed_ms,
        "met": met,
        "no_successes": within and succeeded == 0,
    }


def summarize(experiment: Experiment, state: live.LiveState) -> dict:
    """Counters, latency and the SLO verdict of a run: stored when it finishes, shown everywhere."""
    counters = state.counters
    slo = slo_verdict(experiment.params, state.latencies.get("slo"), counters.get("succeeded", 0))
    return {
        **{name: counters.get(name, 0) for name in live.COUNTERS},
        **{name: counters[name] for name in live.WORKFLOW_COUNTERS if name in counters},
        "p50_ms": state.latencies.get("p50"),
        "p95_ms": state.latencies.get("p95"),
        "max_ms": state.latencies.get("max"),
        "slo_observed_ms": slo["observed_ms"],
        "slo_met": slo["met"],
        "max_lag": max_lag(state),
        "finished": state.finished,
        "accounting_ok": state.accounting_holds(),
    }


def first_pass(experiment: Experiment, state: live.LiveState, summary: dict, *, stopped: bool) -> dict:
    """The run as it first finished, kept when a redrive or a fix changes the live counters: what
    predictions are scored against and what the history lists. `end` is the last attempt's end (epoch
    seconds): a finished run's time axes end there, however late it is viewed."""
    ends = state.buckets.get("end") or {}
    return {
        **summary,
        "peak_depth": series_from_buckets(state.buckets, now=time.time()).peak_depth,
        "drain_s": drain_seconds(state.buckets),
        "retry_peak": max(state.retry_hist.values(), default=0),
        "stopped_early": stopped,
        "t0": state.t0,
        "end": float(max(ends) + 1) if ends else None,
    }


def max_lag(state: live.LiveState) -> int:
    """The most messages one partition was behind (RQ and the stream are one partition: the queue)."""
    if state.max_lag:
        return max(state.max_lag.values())
    return series_from_buckets(state.buckets, now=time.time()).peak_depth


def outcome(experiment: Experiment, state: live.LiveState | None = None) -> dict:
    """The run's outcome: live while Redis has it, else the summary stored when it finished."""
    if state is None and not experiment.is_running and experiment.summary:
        return {**experiment.summary, "expired": False}
    state = state or read_state(experiment)
    if not state.exists:
        return {**(experiment.summary or {}), "expired": True}
    return {**summarize(experiment, state), "expired": False}
