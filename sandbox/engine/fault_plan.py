"""Which job fails, crashes or is delivered twice: a pure function of (seed, job, attempt).

One fault is correlated rather than random: an outage of the payment provider during the first
`outage_s` seconds of the run, when every attempt fails. It is still a pure function, of (seed, job,
attempt, seconds since the first arrival): independent random failures never make retries bunch up, an
outage that fails everyone at once does, and that is the case jitter exists for.
"""

import random
from dataclasses import dataclass


def _draw(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in (seed, *parts)))


@dataclass(frozen=True)
class FaultPlan:
    seed: int
    failure_rate: float
    poison_rate: float
    crash_rate: float
    duplicate_rate: float
    duration_ms: int
    duration_spread_ms: int
    outage_s: float = 0.0

    @classmethod
    def from_params(cls, seed: int, params: dict) -> "FaultPlan":
        return cls(
            seed=seed,
            failure_rate=params["failure_rate"],
            poison_rate=params["poison_rate"],
            crash_rate=params["crash_rate"],
            duplicate_rate=params["duplicate_rate"],
            duration_ms=params["duration_ms"],
            duration_spread_ms=params["duration_spread_ms"],
            outage_s=params.get("outage_s", 0.0),  # runs started before the outage lesson have none
        )

    def is_poison(self, job: int) -> bool:
        return _draw(self.seed, job, "poison").random() < self.poison_rate

    def in_outage(self, since_start_s: float) -> bool:
        """Whether the payment provider is down at this moment of the run (the same for every job)."""
        return 0 <= since_start_s < self.outage_s

    def fails_transiently(self, job: int, attempt: int, since_start_s: float = 0.0) -> bool:
        """An attempt starting `since_start_s` into the run fails: always during the outage, else at random."""
        if self.in_outage(since_start_s):
            return True
        return _draw(self.seed, job, attempt, "fail").random() < self.failure_rate

    def crashes(self, job: int, attempt: int) -> bool:
        return _draw(self.seed, job, attempt, "crash").random() < self.crash_rate

    def delivered_twice(self, job: int) -> bool:
        return _draw(self.seed, job, "dup").random() < self.duplicate_rate

    def duration_s(self, job: int, attempt: int) -> float:
        spread = self.duration_spread_ms
        ms = self.duration_ms + _draw(self.seed, job, attempt, "dur").uniform(-spread, spread)
        return max(0.0, ms) / 1000

    def crash_point_s(self, job: int, attempt: int) -> float:
        """How far into the attempt the work-horse dies (somewhere in its middle half)."""
        return self.duration_s(job, attempt) * _draw(self.seed, job, attempt, "at").uniform(0.25, 0.75)
