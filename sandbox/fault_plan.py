"""Which job fails, crashes or is delivered twice: a pure function of (seed, job, attempt)."""

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
        )

    def is_poison(self, job: int) -> bool:
        return _draw(self.seed, job, "poison").random() < self.poison_rate

    def fails_transiently(self, job: int, attempt: int) -> bool:
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
