"""The retry-storm lesson: an outage fails everyone at once, and only then does jitter matter."""

from sandbox.engine import live
from sandbox.engine.budget import schedule_span_s, worst_case_worker_seconds
from sandbox.engine.fault_plan import FaultPlan
from sandbox.engine.presets import DEFAULTS, PRESETS
from sandbox.params import ExperimentForm
from tests.sandbox.helpers import start

SEED = 42


def test_an_outage_fails_every_attempt_that_starts_in_it_and_nothing_after():
    plan = FaultPlan.from_params(SEED, {**PRESETS["retry-storm"].parameters(), "failure_rate": 0.0})
    assert all(plan.fails_transiently(job, attempt, t) for job in range(1, 41) for attempt in (1, 2) for t in (0, 6.99))
    assert not any(plan.fails_transiently(job, 3, 7.0) for job in range(1, 41))


def test_the_outage_keeps_the_fault_plan_a_pure_function():
    params = {**PRESETS["retry-storm"].parameters(), "failure_rate": 0.3}
    a, b = FaultPlan.from_params(SEED, params), FaultPlan.from_params(SEED, params)
    draws = [(j, n, t) for j in range(30) for n in range(1, 4) for t in (0.5, 6.9, 7.1, 30)]
    assert [a.fails_transiently(*d) for d in draws] == [b.fails_transiently(*d) for d in draws]
    after = [a.fails_transiently(j, 1, 30) for j in range(2000)]
    assert 0.25 < sum(after) / len(after) < 0.35  # after the outage, the ordinary failure rate


def test_runs_stored_before_the_outage_existed_have_none():
    params = {k: v for k, v in PRESETS["flaky"].parameters().items() if k != "outage_s"}
    assert FaultPlan.from_params(1, params).outage_s == 0.0


def test_outage_is_optional_and_bounded_in_the_form():
    base = {**{k: str(v) for k, v in DEFAULTS.items()}, "preset": "happy"}
    blank = ExperimentForm(data={**base, "outage_s": ""})
    assert blank.is_valid(), blank.errors
    assert blank.parameters()["outage_s"] == 0.0
    missing = {k: v for k, v in base.items() if k != "outage_s"}
    assert ExperimentForm(data=missing).is_valid()
    for bad in ("-1", "61", "nan", "inf", "soon"):
        assert "outage_s" in ExperimentForm(data={**base, "outage_s": bad}).errors, bad


def test_the_retry_storm_preset_fits_the_forms_bounds_with_either_jitter():
    for jitter in ("none", "full"):
        data = {**PRESETS["retry-storm"].parameters(), "jitter": jitter, "preset": "retry-storm"}
        form = ExperimentForm(data=data)
        assert form.is_valid(), form.errors
        assert schedule_span_s(form.parameters()) < 60
        assert worst_case_worker_seconds(form.parameters()) < 10


def run_storm(lab_engine, jitter: str) -> live.LiveState:
    # The engine's clock starts on a whole second and stands still while jobs run, so the first pass
    # (40 attempts) happens in one second of the histogram on any machine.
    return lab_engine.finish(start("retry-storm", seed=SEED, jitter=jitter))


def busiest_two_seconds(state: live.LiveState) -> int:
    """Retries due in the busiest two adjacent seconds (one wave can straddle a second boundary)."""
    hist = state.retry_hist
    return max((hist.get(s, 0) + hist.get(s + 1, 0) for s in hist), default=0)


def test_without_jitter_an_outage_brings_retries_back_in_waves_and_full_jitter_spreads_them(lab_engine):
    waves, spread = run_storm(lab_engine, "none"), run_storm(lab_engine, "full")
    none_peak, full_peak = max(waves.retry_hist.values()), max(spread.retry_hist.values())
    none_seconds, full_seconds = len(waves.retry_hist), len(spread.retry_hist)
    print(
        f"\nseed {SEED}: none peak {none_peak} over {none_seconds} s, {waves.counters['retries']} retries; "
        f"full peak {full_peak} over {full_seconds} s, {spread.counters['retries']} retries, "
        f"{spread.counters['dead_lettered']} dead-lettered"
    )
    print(f"none {sorted((s - int(waves.t0), n) for s, n in waves.retry_hist.items())}")
    print(f"full {sorted((s - int(spread.t0), n) for s, n in spread.retry_hist.items())}")

    # Without jitter: every first attempt fails in the 7 s outage, so all 40 retries fall due together
    # 5 s later; then a gap; then the next wave 10 s after that. How many second attempts still start
    # inside the outage depends on how fast two workers get through the first wave (on a slow machine
    # some start after 7 s and succeed), so the second wave is 0-40, never spread out.
    def due(state, first: int, last: int) -> int:
        return sum(n for s, n in state.retry_hist.items() if first <= s - int(state.t0) <= last)

    assert due(waves, 4, 7) == 40
    # On the engine's still clock every second attempt also starts inside the outage: exactly two waves.
    assert sorted((s - int(waves.t0), n) for s, n in waves.retry_hist.items()) == [(5, 40), (15, 40)]
    assert due(waves, 8, 13) == 0
    assert due(waves, 14, 19) == waves.counters["retries"] - 40
    assert waves.counters["dead_lettered"] == 0
    none_window, full_window = busiest_two_seconds(waves), busiest_two_seconds(spread)
    assert none_window >= 30  # (nearly) all 40 due within two seconds
    assert none_seconds <= 6
    # With full jitter the same outage's retries spread out: a much lower peak over many more seconds.
    # (Measured with seed 42: 40 vs 20 in the busiest two seconds; peaks 33 vs 12 in one second.)
    assert none_window >= 1.5 * full_window
    assert full_seconds >= 2 * none_seconds
    assert full_seconds >= 10
    assert spread.counters["retries"] > waves.counters["retries"]  # shorter average waits: more tries in the outage
    for state in (waves, spread):
        assert state.accounting_holds()
