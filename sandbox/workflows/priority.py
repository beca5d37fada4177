"""`priority-inversion` and `priority-reserved`: every `urgent_every`-th message is urgent and short, the rest are
long low-priority jobs, all on the run's share of the shared workers.

Urgent jobs are enqueued at the front of RQ's queue, but a queue's order is not a worker: when long low-priority
jobs hold every slot of the visitor's share, an urgent job waits for one to end, and RQ's rate limiter lets
held-back jobs in oldest first, so it also waits behind every low-priority job that arrived before it.

A reserved pool (`reserved` slots) gives the low-priority jobs a second RQ rate-limit key of their own with the
share less the reservation (sandbox.engine.fairshare.split, kept by every rebalance); the urgent jobs keep the
visitor's key, whose slots are then the reservation. Both keys together hold the visitor's share, no more.
"""

import math

from redis import Redis

from sandbox.engine import live


def is_urgent(params: dict, job: int) -> bool:
    every = params.get("urgent_every", 0) if params.get("workflow") == "priority" else 0
    return bool(every) and job % every == 0


def work_seconds(params: dict, job: int, planned_s: float) -> float:
    """An urgent job's work is `urgent_ms`; a low-priority one's is the run's planned duration."""
    return params["urgent_ms"] / 1000 if is_urgent(params, job) else planned_s


def percentile(values: list[int], fraction: float) -> int:
    """Nearest-rank percentile (0 when there are none)."""
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def counters(experiment_id: int, redis: Redis, params: dict) -> dict[str, int]:
    """Urgent and low-priority latency and the low-priority throughput of the jobs that succeeded, from the engine's
    own record: a job's latency is from its arrival (`enq`) to its outcome (`lat`), its outcome is in `term`."""
    pipe = redis.pipeline(transaction=False)
    pipe.zrange(live.key(experiment_id, "lat"), 0, -1, withscores=True)
    pipe.hgetall(live.key(experiment_id, "enq"))
    pipe.hgetall(live.key(experiment_id, "term"))
    latencies, arrivals, ends = pipe.execute()
    urgent, low, low_ends, low_starts = [], [], [], []
    for raw, ms in latencies:
        if ends.get(raw) != b"succeeded":
            continue  # a dead-lettered job's latency is not a job done
        job = int(raw)
        if is_urgent(params, job):
            urgent.append(int(ms))
            continue
        low.append(int(ms))
        arrived = float(arrivals.get(raw, 0) or 0)
        low_starts.append(arrived)
        low_ends.append(arrived + ms / 1000)
    span = max(low_ends, default=0) - min(low_starts, default=0)
    return {
        "urgent_done": len(urgent),
        "urgent_p95_ms": percentile(urgent, 0.95),
        "urgent_max_ms": max(urgent, default=0),
        "low_done": len(low),
        "low_p95_ms": percentile(low, 0.95),
        # low-priority jobs done per minute, from the first one's arrival to the last one's end
        "low_throughput": round(60 * len(low) / span) if span > 0 else 0,
    }
