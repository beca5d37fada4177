"""Sharing the Lab's workers between visitors.

All of one visitor's lab jobs carry one RQ `RateLimit` key, so RQ holds back (off the queue) any job
beyond the visitor's slots. How many slots: the visitor's fair share of the live workers, max-min
fair (nobody gets more than they asked for; what one does not need goes to the others). It is
re-computed when an experiment starts or finishes and on every janitor pass, so a newcomer beside a
visitor who filled every worker gets a worker as soon as one of the hog's jobs ends.

RQ stores a rate limit's concurrency on its config hash and on every job (each enqueue re-registers
the job's value), so a change is written to both. A job already running keeps its old copy in memory
and may write it back on a retry; the next pass corrects that within seconds.
"""

import hashlib

from redis import Redis

from sandbox.engine import live, rq_storage
from sandbox.engine.budget import MAX_JOBS
from sandbox.models import Experiment

HEADROOM_FROM = 3  # workers
FRESH_WORKER_SECONDS = 15  # busy workers beat every 2 s, idle ones every ~5 s (sandbox.ops.workers)


def rate_key(limit_key: str) -> str:
    """The RQ rate-limit key of one visitor (their limit key, hashed: it may hold an address)."""
    return "lab-v-" + hashlib.sha256(limit_key.encode()).hexdigest()[:16]


def shares(demands: dict[str, int], workers: int) -> dict[str, int]:
    """Max-min fair split of `workers` slots: each gets up to its demand, at least 1 each, and with
    three or more workers nobody gets all of them: one stays free for the next visitor, who would
    otherwise wait for a job of the hog's to end (up to the longest job, 10 s)."""
    most = workers - 1 if workers >= HEADROOM_FROM else workers
    demands = {name: min(demand, max(most, 1)) for name, demand in demands.items()}
    slots = {name: 0 for name in demands}
    left = max(workers, 0)
    hungry = sorted(demands, key=lambda name: (demands[name], name))
    while hungry and left > 0:
        each = max(1, left // len(hungry))
        for name in list(hungry):
            grant = min(each, demands[name] - slots[name], left)
            slots[name] += grant
            left -= grant
            if slots[name] >= demands[name]:
                hungry.remove(name)
            if left == 0:
                break
    return {name: max(1, granted) for name, granted in slots.items()}


def live_workers(connection: Redis) -> int:
    """Workers that heart-beat recently (a killed one stays registered until its key expires)."""
    ages = rq_storage.worker_heartbeat_ages(connection)
    return max(1, sum(1 for age in ages if age < FRESH_WORKER_SECONDS))


def low_rate_key(limit_key: str) -> str:
    """The second key of a visitor running a reserved pool (sandbox.workflows.priority): their low-priority jobs'."""
    return rate_key(limit_key) + "-low"


def reserved_slots(params: dict) -> int:
    return int(params.get("reserved", 0)) if params.get("workflow") == "priority" else 0


def split(slots: int, reserved: int) -> tuple[int, int]:
    """(low-priority slots, the visitor key's slots) of a visitor's share when `reserved` are kept for urgent
    jobs. They add up to the share; RQ needs at least one slot a key, so a share of one cannot reserve
    (both keys get one, as the fair share gives every visitor at least one)."""
    if not reserved:
        return 0, slots
    low = max(1, slots - reserved)
    return low, max(1, slots - low)


def rebalance(connection: Redis) -> dict[str, int]:
    """Give every visitor with a running experiment their fair share of slots now; returns them.

    A visitor running a reserved pool has two keys: the low-priority jobs' key gets the share less the
    reservation, the visitor's key (urgent jobs, and their other runs') the rest."""
    running = list(Experiment.objects.active().values_list("pk", "limit_key", "params"))
    demands: dict[str, int] = {}
    reserve: dict[str, int] = {}
    experiments: dict[str, list[tuple[int, int]]] = {}
    for pk, limit_key, params in running:
        demands[limit_key] = demands.get(limit_key, 0) + int(params.get("concurrency", 1))
        reserve[limit_key] = max(reserve.get(limit_key, 0), reserved_slots(params))
        experiments.setdefault(limit_key, []).append((pk, min(int(params.get("jobs", 0)), MAX_JOBS)))
    granted = shares(demands, live_workers(connection))
    for limit_key, slots in granted.items():
        jobs = [(live.job_id_for(pk, ""), n) for pk, n in experiments[limit_key]]
        low, visitor = split(slots, reserve[limit_key])
        keyed = [(rate_key(limit_key), visitor)] + ([(low_rate_key(limit_key), low)] if low else [])
        for key, n in keyed:
            if rq_storage.rate_limit_concurrency(connection, key) != n:
                rq_storage.set_rate_limit_concurrency(connection, key, n, jobs)  # each job of this key only
            rq_storage.release_held_jobs(connection, key, n)  # a raised share lets held-back jobs on at once
    return granted


def granted(limit_key: str, connection: Redis) -> int | None:
    """The worker slots a visitor holds right now (None when they run nothing)."""
    return rq_storage.rate_limit_concurrency(connection, rate_key(limit_key))
