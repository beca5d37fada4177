"""What an experiment's parameters predict, next to what happened: the queueing maths of the live view."""

import math

from sandbox.presets import DEFAULTS


def drain_seconds(buckets: dict[str, dict[int, int]]) -> int | None:
    """Seconds from the first arrival to the last attempt's end (whole seconds, as bucketed)."""
    arrivals, ends = buckets.get("arr"), buckets.get("end")
    if not arrivals or not ends:
        return None
    return max(ends) - min(arrivals) + 1


def explain(params: dict, counters: dict, peak_depth: int | None, drain_s: int | None = None) -> list[dict]:
    """What the parameters predict, next to what happened: one {topic, expected, observed} per effect."""
    p = {**DEFAULTS, **params}
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
