"""Time series of one run, from its per-second buckets: queue depth, in flight, outcomes, lag, retries.

Numbers only; prepsite/charts.py draws them.
"""

import math
import time
from dataclasses import dataclass, field

MAX_POINTS = 240  # longer runs are binned so a chart never draws more than this many slots


@dataclass
class Series:
    """Per-slot values of one experiment, derived from the per-second buckets."""

    origin: int = 0  # epoch second of the first bucket
    bin_s: int = 1  # seconds per slot
    seconds: list[int] = field(default_factory=list)  # slot start, relative to origin
    depth: list[int] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    ok: list[int] = field(default_factory=list)
    fail: list[int] = field(default_factory=list)

    @property
    def peak_depth(self) -> int:
        return max(self.depth, default=0)


def series_from_buckets(buckets: dict[str, dict[int, int]], *, now: float | None = None) -> Series:
    """depth(t) = arrivals - starts so far; in_flight(t) = starts - ends so far; per-slot ok/fail counts."""
    keys = [second for kind in buckets.values() for second in kind]
    if not keys:
        return Series()
    now = time.time() if now is None else now
    origin = min(keys)
    # Arrivals are booked in the future (spaced arrivals, scheduled retries): stop the axis at now.
    last = max(origin, min(max(keys), int(now)))
    span = last - origin + 1
    bin_s = max(1, math.ceil(span / MAX_POINTS))
    series = Series(origin=origin, bin_s=bin_s)
    arr = buckets.get("arr", {})
    start, end = buckets.get("start", {}), buckets.get("end", {})
    ok, fail = buckets.get("ok", {}), buckets.get("fail", {})
    cum_arr = cum_start = cum_end = 0
    for slot_start in range(origin, last + 1, bin_s):
        slot = range(slot_start, min(slot_start + bin_s, last + 1))
        cum_arr += sum(arr.get(s, 0) for s in slot)
        cum_start += sum(start.get(s, 0) for s in slot)
        cum_end += sum(end.get(s, 0) for s in slot)
        series.seconds.append(slot_start - origin)
        series.depth.append(max(0, cum_arr - cum_start))
        series.in_flight.append(max(0, cum_start - cum_end))
        series.ok.append(sum(ok.get(s, 0) for s in slot))
        series.fail.append(sum(fail.get(s, 0) for s in slot))
    return series


def lag_series(
    buckets: dict[str, dict[int, int]], partitions: int, *, origin: int, seconds: int
) -> tuple[list[int], list[list[int]], int]:
    """Lag per partition per slot from the `lagN` samples: each sample holds until the next one (a lag
    is a level, not a count), and a slot of several seconds shows its highest lag so no spike is lost.
    Returns (slot starts relative to origin, one list per partition, seconds per slot)."""
    span = max(1, seconds)
    bin_s = max(1, math.ceil(span / MAX_POINTS))
    xs = list(range(0, span, bin_s))
    lines = []
    for partition in range(partitions):
        samples = buckets.get(f"lag{partition}", {})
        before = [s for s in samples if s < origin]
        level = max(0, samples[max(before)]) if before else 0
        values = []
        for slot in xs:
            peak = 0
            for second in range(origin + slot, origin + min(slot + bin_s, span)):
                level = max(0, samples.get(second, level))
                peak = max(peak, level)
            values.append(peak)
        lines.append(values)
    return xs, lines, bin_s


def depth_samples(buckets: dict[str, dict[int, int]]) -> dict[int, int]:
    """Queue depth (arrivals minus starts so far) at every second something arrived or started: RQ's lag."""
    arr, start = buckets.get("arr", {}), buckets.get("start", {})
    depth, samples = 0, {}
    for second in sorted({*arr, *start}):
        depth += arr.get(second, 0) - start.get(second, 0)
        samples[second] = max(0, depth)
    return samples


def retry_histogram(retry_hist: dict[int, int], t0: float) -> tuple[list[int], list[int], int]:
    """Retries due per slot since the experiment's start (slots of 1 s unless the run is long)."""
    if not retry_hist:
        return [], [], 1
    base = int(t0)
    first = min(min(retry_hist), base)
    span = max(retry_hist) - first + 1
    bin_s = max(1, math.ceil(span / MAX_POINTS))
    seconds, values = [], []
    for slot_start in range(first, max(retry_hist) + 1, bin_s):
        seconds.append(slot_start - base)
        values.append(sum(retry_hist.get(s, 0) for s in range(slot_start, slot_start + bin_s)))
    return seconds, values, bin_s


def drain_seconds(buckets: dict[str, dict[int, int]], until_s: float | None = None) -> int | None:
    """Seconds from the first arrival to the last attempt's end (whole seconds, as bucketed).

    until_s: count only attempts that ended within this many seconds of the first arrival (the first
    pass, when a redrive started then).
    """
    arrivals, ends = buckets.get("arr"), buckets.get("end")
    if not arrivals or not ends:
        return None
    first = min(arrivals)
    last = max((s for s in ends if until_s is None or s <= first + until_s), default=None)
    return None if last is None else last - first + 1


def redrive_drain_seconds(buckets: dict[str, dict[int, int]], redriven_at_s: float) -> int | None:
    """Seconds from the first redrive to the last attempt's end after it."""
    arrivals, ends = buckets.get("arr"), buckets.get("end")
    if not arrivals or not ends:
        return None
    start = math.floor(min(arrivals) + redriven_at_s)
    last = max((s for s in ends if s >= start), default=None)
    return None if last is None else last - start + 1
