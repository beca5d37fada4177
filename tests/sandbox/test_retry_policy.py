import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.engine.fault_plan import FaultPlan
from sandbox.engine.presets import PRESETS
from sandbox.engine.retry_policy import backoff_ceiling, retry_intervals


def test_exponential_backoff_doubles_until_the_cap():
    ceilings = [backoff_ceiling(attempt=n, backoff="exponential", base_s=1, cap_s=10) for n in range(1, 7)]
    assert ceilings == [1, 2, 4, 8, 10, 10]


def test_fixed_backoff_is_flat():
    assert retry_intervals(max_retries=3, backoff="fixed", base_s=2, cap_s=9, jitter="none", rng=random.Random(1)) == [
        2,
        2,
        2,
    ]


@pytest.mark.parametrize("jitter", ["full", "equal"])
def test_jittered_intervals_stay_inside_their_window(jitter):
    for seed in range(200):
        intervals = retry_intervals(
            max_retries=5, backoff="exponential", base_s=1, cap_s=8, jitter=jitter, rng=random.Random(seed)
        )
        for attempt, interval in enumerate(intervals, start=1):
            ceiling = backoff_ceiling(attempt=attempt, backoff="exponential", base_s=1, cap_s=8)
            low = 0 if jitter == "full" else ceiling / 2
            assert round(low) <= interval <= round(ceiling)


def test_full_jitter_spreads_twenty_jobs_where_no_jitter_synchronizes_them():
    def first_intervals(jitter):
        return [
            retry_intervals(
                max_retries=1, backoff="fixed", base_s=8, cap_s=8, jitter=jitter, rng=random.Random(f"7:{j}")
            )[0]
            for j in range(1, 21)
        ]

    assert set(first_intervals("none")) == {8}
    spread = first_intervals("full")
    assert len(set(spread)) >= 6
    assert max(spread.count(v) for v in spread) <= 5


def test_fault_plan_is_a_pure_function_of_seed_job_and_attempt():
    params = {**PRESETS["flaky"].parameters(), "crash_rate": 0.2, "duplicate_rate": 0.3}
    a, b = FaultPlan.from_params(42, params), FaultPlan.from_params(42, params)
    other = FaultPlan.from_params(43, params)

    def draws(p):
        return [
            (p.fails_transiently(j, n), p.crashes(j, n), p.delivered_twice(j)) for j in range(50) for n in range(1, 4)
        ]

    assert draws(a) == draws(b)
    assert draws(a) != draws(other)
    failures = sum(a.fails_transiently(j, 1) for j in range(2000)) / 2000
    assert 0.35 < failures < 0.45  # flaky's failure_rate is 0.4


@given(
    max_retries=st.integers(0, 10),
    base=st.floats(0, 60),
    cap=st.floats(0, 300),
    backoff=st.sampled_from(["fixed", "exponential"]),
    jitter=st.sampled_from(["none", "full", "equal"]),
    seed=st.integers(),
)
def test_intervals_are_whole_non_negative_seconds_never_above_the_cap(max_retries, base, cap, backoff, jitter, seed):
    intervals = retry_intervals(
        max_retries=max_retries, backoff=backoff, base_s=base, cap_s=cap, jitter=jitter, rng=random.Random(seed)
    )
    assert len(intervals) == max_retries
    assert all(isinstance(i, int) and 0 <= i <= round(max(cap, 0)) + 1 for i in intervals)
