"""What an experiment's parameters predict, next to what happened: the queueing maths of the live view.

Every expected value says what it assumes (worker slots, how long an attempt holds a worker, average
jitter), so a learner can tell a wrong model from a wrong assumption.
"""

import math

from sandbox import delivery
from sandbox.engine.budget import admitted_jobs, attempt_seconds
from sandbox.engine.presets import DEFAULTS
from sandbox.engine.retry_policy import backoff_ceiling
from sandbox.engine.series import drain_seconds, redrive_drain_seconds

# The average wait as a share of its ceiling: full jitter draws from [0, t], equal jitter from [t/2, t].
JITTER_MEAN = {"none": 1.0, "full": 0.5, "equal": 0.75}


def _of(expected: float, total: int) -> str:
    """'all 12', 'about 3 of 12', 'probably none of 30 (0.3 expected)': a count a person would say."""
    if total and expected >= total - 0.5:
        return f"all {total}"
    if expected <= 0:
        return f"none of {total}"
    if expected < 0.5:
        return f"probably none of {total} ({expected:.1g} expected)"
    return f"about {math.floor(expected + 0.5)} of {total}"


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}" if n == 1 else f"{n:g} {word}s"


class _Model:
    """The parameters' predictions, computed once; every method is arithmetic on the parameters."""

    def __init__(self, p: dict, slots: int):
        self.p = p
        self.slots = slots
        self.admitted = admitted_jobs(p)
        self.retries = p["max_retries"]
        self.hold_max = attempt_seconds(p)  # the longest an attempt holds a worker
        self.hold_mean = min(p["duration_ms"] / 1000, p["timeout_s"])
        self.always_times_out = p["duration_ms"] - p["duration_spread_ms"] > p["timeout_s"] * 1000
        self.fail = 1.0 if self.always_times_out else min(1.0, p["failure_rate"] + p["crash_rate"])
        self.poison = 0.0 if self.always_times_out else p["poison_rate"]
        self.ceilings = [
            backoff_ceiling(attempt=n, backoff=p["backoff"], base_s=p["backoff_base_s"], cap_s=p["backoff_cap_s"])
            for n in range(1, self.retries + 1)
        ]
        self.mean_waits = [c * JITTER_MEAN.get(p["jitter"], 1.0) for c in self.ceilings]
        outage = p.get("outage_s") or 0.0
        lam = p["arrival_per_s"]
        self.outage = outage
        self.in_outage = (
            0 if outage <= 0 else (min(self.admitted, math.ceil(outage * lam)) if lam > 0 else self.admitted)
        )
        self.outage_attempts = self._attempts_before(outage, self.mean_waits) if outage > 0 else 0

    def attempt_starts(self, waits: list[float]) -> list[float]:
        """When each attempt of a job arriving at 0 starts: after the earlier attempts and their waits."""
        starts, t = [], 0.0
        for k in range(self.retries + 1):
            starts.append(t)
            if k < len(waits):
                t += self.hold_mean + waits[k]
        return starts

    def _attempts_before(self, outage: float, waits: list[float]) -> int:
        return sum(1 for start in self.attempt_starts(waits) if start < outage)

    def p_more_than(self, k: int, outage_job: bool) -> float:
        """The chance a job needs more than k attempts (fails its first k)."""
        if outage_job:
            if k <= self.outage_attempts:
                return 1.0
            k -= self.outage_attempts
        return self.poison + (1 - self.poison) * self.fail**k

    def dlq_share(self, outage_job: bool) -> float:
        return self.p_more_than(self.retries + 1, outage_job)

    def dead_lettered(self) -> float:
        out = self.in_outage
        return out * self.dlq_share(True) + (self.admitted - out) * self.dlq_share(False)

    def attempts(self, outage_job: bool) -> float:
        return sum(self.p_more_than(k, outage_job) for k in range(self.retries + 1))

    def total_attempts(self) -> float:
        out = self.in_outage
        return out * self.attempts(True) + (self.admitted - out) * self.attempts(False)

    def longest_chain_attempts(self) -> int:
        """Attempts made by the unluckiest job we expect to see: the largest k that half a job or more reaches."""
        out, rest = self.in_outage, self.admitted - self.in_outage
        k = 1
        while k <= self.retries and out * self.p_more_than(k, True) + rest * self.p_more_than(k, False) >= 0.5:
            k += 1
        return k

    def window(self) -> float:
        lam = self.p["arrival_per_s"]
        return (self.admitted - 1) / lam if lam > 0 and self.admitted > 1 else 0.0

    def drain_range(self) -> tuple[float, float, dict]:
        """(low, high, parts): low at the average work and waits, high with every attempt and wait at its longest."""
        attempts = self.total_attempts()
        k = self.longest_chain_attempts()
        work = (attempts * self.hold_mean / self.slots, attempts * self.hold_max / self.slots)
        chain = (
            sum(self.mean_waits[: k - 1]) + k * self.hold_mean,
            sum(self.ceilings[: k - 1]) + k * self.hold_max,
        )
        window = self.window()
        low = max(work[0], window + chain[0])
        high = max(work[1], window + chain[1])
        return low, high, {"attempts": attempts, "work": work, "chain": chain, "chain_attempts": k, "window": window}


def _slots_text(p: dict, slots: int, given: bool) -> str:
    asked = p["concurrency"]
    if not given:
        return (
            f"assuming the {_plural(slots, 'worker slot')} you asked for (fewer when the shared workers are busy "
            "with other visitors' jobs)"
        )
    if slots < asked:
        return (
            f"assuming {_plural(slots, 'worker slot')}, as you were given (you asked for {asked}; the other "
            "workers were serving other visitors' jobs, and each visitor gets a fair share)"
        )
    return f"assuming {_plural(slots, 'worker slot')}, as you were given"


def _span(low: float, high: float, fmt: str = ".1f") -> str:
    """'2.0–3.0' or, when both ends agree at this precision, '6.0'."""
    a, b = format(low, fmt), format(high, fmt)
    return a if a == b else f"{a}–{b}"


def _hold_text(p: dict, model: _Model) -> str:
    work = f"{p['duration_ms']} ± {p['duration_spread_ms']} ms of work"
    if model.hold_max < (p["duration_ms"] + p["duration_spread_ms"]) / 1000:
        return f"an attempt holds a worker for at most {model.hold_max:g} s ({work}, cut off by the {p['timeout_s']} s timeout)"
    return f"an attempt holds a worker for {_span(model.hold_mean, model.hold_max, 'g')} s ({work})"


def _drain_item(p, model, slots_text, first_s, redrive_s, redriven_at_s) -> dict:
    low, high, parts = model.drain_range()
    k = parts["chain_attempts"]
    if k == 1:
        chain = "one attempt"
    else:
        chain = (
            f"{k} attempts and the wait between them" if k == 2 else f"{k} attempts and the {k - 1} waits between them"
        )
        if p["jitter"] != "none":
            chain += f", from {p['jitter']} jitter's average wait to the longest"
    expected = (
        f"≈ {_span(low, high)} s, {slots_text}; {_hold_text(p, model)}. That is the larger of the work "
        f"({parts['attempts']:.3g} attempts over {_plural(model.slots, 'slot')}: {_span(*parts['work'])} s) and "
        f"the last arrival (at {parts['window']:.1f} s) plus the longest retry chain we expect ({chain}: "
        f"{_span(*parts['chain'])} s)."
    )
    if redriven_at_s is None:
        observed = (
            f"about {first_s} s from the first arrival to the last attempt's end"
            if first_s is not None
            else "not measured (the per-second history expired)"
        )
    else:
        observed = (
            f"first pass: about {first_s} s, up to the redrive at +{redriven_at_s:.0f} s"
            if first_s is not None
            else f"first pass: not measured, up to the redrive at +{redriven_at_s:.0f} s"
        )
        observed += (
            f"; the redrive's own drain: about {redrive_s} s from the redrive to its last attempt's end"
            if redrive_s is not None
            else "; the redrive has not drained yet"
        )
    return {"topic": "Time to drain", "expected": expected, "observed": observed}


def _waves_item(p, model, retry_hist) -> dict:
    o, n = model.outage, model.in_outage
    arriving = "arriving in that window" if p["arrival_per_s"] > 0 else "arriving at once"
    text = f"The provider is down for the first {o:g} s: every attempt that starts then fails, for every job at once ({n} {arriving}). "
    if p["jitter"] == "none":
        starts = model.attempt_starts(model.ceilings)
        failing = [k for k, start in enumerate(starts) if start < o]
        waves = [starts[k + 1] for k in failing if k + 1 < len(starts)]
        lam = p["arrival_per_s"]
        pass_s = max(n * model.hold_mean / model.slots, n / lam if lam > 0 else 0.0)  # how wide the first failures are
        size = n if pass_s <= 1 else math.ceil(n / pass_s)
        if waves:
            when = ", ".join(f"+{w:.0f} s" for w in waves)
            text += (
                f"Without jitter they retry together: {_plural(len(waves), 'wave')} of {n} retries, at {when} "
                f"(the waits {', '.join(f'{c:g}' for c in model.ceilings[: len(waves)])} s), "
                + (
                    f"about {size} due in one second"
                    if pass_s <= 1
                    else f"each as wide as the first failures ({pass_s:.1f} s of arrivals and work on "
                    f"{_plural(model.slots, 'slot')}), about {size} due per second"
                )
                + ". "
            )
        if not model.retries:
            text += f"With no retries, all {n} are dead-lettered."
        elif len(failing) > model.retries:
            text += f"All {model.retries + 1} attempts start inside the outage, so all {n} are dead-lettered."
        elif waves:
            text += f"Attempt {len(failing) + 1}, at +{starts[len(failing)]:.0f} s, comes after the outage."
    elif model.ceilings:
        first = model.ceilings[0]
        width = first if p["jitter"] == "full" else first / 2
        text += (
            f"With {p['jitter']} jitter the same retries spread out: the first wave's waits are drawn over "
            f"{width:g} s, so about {n / max(width, 1):.0f} due in one second at first, and later waves spread "
            f"wider still (waits up to {', '.join(f'{c:g}' for c in model.ceilings)} s). Jitter waits less on "
            f"average, so about {model.outage_attempts} of each job's attempts land in the outage."
        )
    if retry_hist:
        observed = (
            f"at most {max(retry_hist.values())} retries due in one second; retries fell due in "
            f"{len(retry_hist)} distinct seconds"
        )
    else:
        observed = "see the retry chart: retries due per second"
    return {"topic": "Retry waves after an outage", "expected": text.strip(), "observed": observed}


def explain(
    params: dict,
    counters: dict,
    peak_depth: int | None,
    drain_s: int | None = None,
    *,
    slots: int | None = None,
    redriven_at_s: float | None = None,
    buckets: dict[str, dict[int, int]] | None = None,
    retry_hist: dict[int, int] | None = None,
) -> list[dict]:
    """What the parameters predict, next to what happened: one {topic, expected, observed} per effect.

    slots: the worker slots the run actually got (its fair share); None assumes its concurrency.
    redriven_at_s: seconds from the first arrival to the first redrive; the drain is then measured for the
    first pass only, and the redrive's own drain separately. buckets (the live per-second buckets) lets
    explain measure both; without them drain_s is taken as the whole run's span.
    retry_hist: the live {second: retries due}, for the outage lesson's observed waves.
    """
    p = {**DEFAULTS, **params}
    given = slots is not None
    model = _Model(p, max(1, slots if slots is not None else p["concurrency"]))
    slots_text = _slots_text(p, model.slots, given)
    items = []
    requested = counters.get("requested", p["jobs"])
    admitted = model.admitted

    first_s, redrive_s = drain_s, None
    if buckets is not None:
        first_s = drain_seconds(buckets, redriven_at_s)
        redrive_s = redrive_drain_seconds(buckets, redriven_at_s) if redriven_at_s is not None else None
    elif redriven_at_s is not None and drain_s is not None:
        first_s = min(drain_s, math.floor(redriven_at_s) + 1)
        redrive_s = max(0, drain_s - math.floor(redriven_at_s)) if drain_s > redriven_at_s else None
    if first_s is not None or buckets is not None:
        items.append(_drain_item(p, model, slots_text, first_s, redrive_s, redriven_at_s))

    if p["jobs"] > p["queue_cap"]:
        items.append(
            {
                "topic": "Load shedding",
                "expected": f"rejected = requested − queue_cap = {p['jobs']} − {p['queue_cap']} = {p['jobs'] - p['queue_cap']}",
                "observed": f"{counters.get('rejected', 0)} rejected at admission",
            }
        )

    if model.outage > 0:
        items.append(_waves_item(p, model, retry_hist))

    retries = model.retries
    share = model.dlq_share(False)
    if model.always_times_out:
        why = (
            f"every attempt runs {p['duration_ms']} ms ± {p['duration_spread_ms']} against a {p['timeout_s']} s "
            f"timeout, so every attempt times out = {share:.3g}"
        )
    else:
        why = f"poison share {model.poison:g} + (1 − {model.poison:g}) × {model.fail:g}^({retries}+1) = {share:.3g}"
    dead = model.dead_lettered()
    if dead > 0:
        if model.in_outage:
            why += (
                f"; the {model.in_outage} jobs arriving in the {model.outage:g} s outage spend about "
                f"{min(model.outage_attempts, retries + 1)} of their {retries + 1} attempts in it, so theirs is "
                f"{model.dlq_share(True):.3g}"
            )
        items.append(
            {
                "topic": "Dead-letter queue",
                "expected": f"DLQ share ≈ {why}, so {_of(dead, admitted)} jobs",
                "observed": f"{counters.get('dead_lettered', 0)} dead-lettered (after {counters.get('redriven', 0)} redriven)",
            }
        )

    if p["arrival_per_s"] > 0:
        lam = p["arrival_per_s"]
        service = max(model.hold_mean, 0.001)
        capacity = model.slots / service
        window = admitted / lam
        growth = max(0.0, lam - capacity)
        items.append(
            {
                "topic": "Little's law",
                "expected": (
                    f"{slots_text[0].upper()}{slots_text[1:]}: λ = {lam:g}/s, W = {service:g} s, so L = λW = "
                    f"{lam * service:.1f} jobs in service; capacity = worker slots / W = {model.slots} / "
                    f"{service:g} = {capacity:.1f}/s. "
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
    items += delivery.model_for(p).lessons(p, counters, model)
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
