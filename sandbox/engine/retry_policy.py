"""Backoff with jitter, computed per job: RQ has neither jitter nor sub-second intervals."""

import random


def backoff_ceiling(*, attempt: int, backoff: str, base_s: float, cap_s: float) -> float:
    """Delay before retry number `attempt` (1-based) before jitter: base, or base * 2^(attempt-1), capped."""
    raw = base_s if backoff == "fixed" else base_s * 2 ** (attempt - 1)
    return min(cap_s, raw)


def retry_intervals(
    *, max_retries: int, backoff: str, base_s: float, cap_s: float, jitter: str, rng: random.Random
) -> list[int]:
    """Whole-second waits before each retry; full jitter draws from [0, t], equal jitter from [t/2, t]."""
    intervals = []
    for attempt in range(1, max_retries + 1):
        ceiling = backoff_ceiling(attempt=attempt, backoff=backoff, base_s=base_s, cap_s=cap_s)
        if jitter == "full":
            delay = rng.uniform(0, ceiling)
        elif jitter == "equal":
            delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
        else:
            delay = ceiling
        intervals.append(round(delay))
    return intervals
