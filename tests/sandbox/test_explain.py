"""Expected values that say what they assume: the numbers in the explanation's text."""

from sandbox.engine.presets import PRESETS
from sandbox.liveview.explain import drain_seconds, explain, redrive_drain_seconds


def items(preset: str, counters: dict | None = None, **kwargs) -> dict[str, dict]:
    overrides = kwargs.pop("params", {})
    params = {**PRESETS[preset].parameters(), **overrides}
    kwargs.setdefault("peak_depth", None)
    kwargs.setdefault("drain_s", 10)
    return {item["topic"]: item for item in explain(params, counters or {}, **kwargs)}


# ---------------------------------------------------------------- (a) an attempt holds a worker until its timeout


def test_drain_counts_an_attempt_as_held_until_its_timeout_not_its_full_work():
    drain = items("timeout")["Time to drain"]["expected"]
    # 6 jobs × 2 attempts, each cut off at 1 s (not 3 s of work), over 2 slots.
    assert drain.startswith("≈ 6.0 s,")
    assert "at most 1 s (3000 ± 0 ms of work, cut off by the 1 s timeout)" in drain
    assert "12 attempts over 2 slots: 6.0 s" in drain


def test_drain_is_a_range_from_average_work_to_the_longest_attempt():
    drain = items("happy")["Time to drain"]["expected"]
    assert drain.startswith("≈ 2.0–3.0 s,")  # 20 jobs × 0.2–0.3 s over 2 slots
    assert "holds a worker for 0.2–0.3 s (200 ± 100 ms of work)" in drain


def test_drain_includes_the_longest_retry_chain():
    drain = items("poison", params={"jitter": "none"})["Time to drain"]["expected"]
    # 4 attempts of 0.1–0.15 s and waits of 2 + 4 + 8 s.
    assert "4 attempts and the 3 waits between them: 14.4–14.6 s" in drain
    assert drain.startswith("≈ 14.4–14.6 s,")


# ---------------------------------------------------------------- (b) the worker slots the run actually got


def test_without_slots_it_assumes_the_concurrency_asked_for_and_says_so():
    drain = items("slow-consumer")["Time to drain"]["expected"]
    assert "assuming the 2 worker slots you asked for" in drain


def test_with_fewer_slots_than_asked_it_says_so_and_recomputes():
    explained = items("slow-consumer", slots=1, peak_depth=40)
    drain = explained["Time to drain"]["expected"]
    assert "assuming 1 worker slot, as you were given (you asked for 2;" in drain
    assert "other visitors' jobs" in drain
    assert drain.startswith("≈ 24.0 s,")  # 60 jobs × 0.4 s over 1 slot
    little = explained["Little's law"]["expected"]
    assert little.startswith("Assuming 1 worker slot, as you were given")
    assert "capacity = worker slots / W = 1 / 0.4 = 2.5/s" in little
    assert "Arrivals exceed capacity by 7.5/s for 6 s: peak depth ≈ 45." in little


def test_with_the_slots_asked_for_it_says_they_were_given():
    drain = items("slow-consumer", slots=2)["Time to drain"]["expected"]
    assert "assuming 2 worker slots, as you were given;" in drain
    assert drain.startswith("≈ 12.0 s,")


# ---------------------------------------------------------------- (c) counts a person would say


def test_dlq_counts_are_rounded_the_way_a_person_would_say_them():
    assert "so all 12 jobs" in items("poison")["Dead-letter queue"]["expected"]
    assert "so probably none of 30 (0.3 expected) jobs" in items("flaky")["Dead-letter queue"]["expected"]
    assert "= 0.0625, so about 1 of 8 jobs" in items("crash")["Dead-letter queue"]["expected"]
    half = items("flaky", params={"jobs": 20, "failure_rate": 0.5, "max_retries": 1})
    assert "0.5^(1+1) = 0.25, so about 5 of 20 jobs" in half["Dead-letter queue"]["expected"]
    assert "Dead-letter queue" not in items("happy")


# ---------------------------------------------------------------- (d) drain after a redrive

BUCKETS = {"arr": {100: 12, 121: 12}, "end": {101: 3, 112: 12, 121: 4, 126: 8}}


def test_drain_before_and_after_a_redrive_is_measured_separately():
    assert drain_seconds(BUCKETS) == 27
    assert drain_seconds(BUCKETS, 20.4) == 13
    assert redrive_drain_seconds(BUCKETS, 20.4) == 7
    observed = items("poison", drain_s=None, buckets=BUCKETS, redriven_at_s=20.4)["Time to drain"]["observed"]
    assert observed == (
        "first pass: about 13 s, up to the redrive at +20 s; "
        "the redrive's own drain: about 7 s from the redrive to its last attempt's end"
    )


def test_without_buckets_a_redrive_splits_the_whole_span():
    observed = items("poison", drain_s=27, redriven_at_s=20.4)["Time to drain"]["observed"]
    assert "first pass: about 21 s, up to the redrive at +20 s" in observed
    assert "the redrive's own drain: about 7 s" in observed


def test_a_redrive_still_running_has_no_drain_yet():
    buckets = {"arr": {100: 12, 121: 12}, "end": {112: 12}}
    observed = items("poison", buckets=buckets, redriven_at_s=20.4)["Time to drain"]["observed"]
    assert observed.endswith("the redrive has not drained yet")


def test_without_a_redrive_the_drain_is_the_whole_run():
    assert items("happy", drain_s=4)["Time to drain"]["observed"] == (
        "about 4 s from the first arrival to the last attempt's end"
    )
    assert "Time to drain" not in items("happy", drain_s=None)


# ---------------------------------------------------------------- (e) the outage and jitter lesson


def test_without_jitter_an_outage_predicts_waves_when_and_how_big():
    waves = items("retry-storm", retry_hist={1005: 40, 1015: 40})["Retry waves after an outage"]
    assert "down for the first 7 s" in waves["expected"]
    assert "(40 arriving at once)" in waves["expected"]
    assert "2 waves of 40 retries, at +5 s, +15 s (the waits 5, 10 s), about 40 due in one second" in waves["expected"]
    assert "Attempt 3, at +15 s, comes after the outage." in waves["expected"]
    assert waves["observed"] == "at most 40 retries due in one second; retries fell due in 2 distinct seconds"


def test_with_full_jitter_the_outage_predicts_a_spread():
    waves = items("retry-storm", params={"jitter": "full"})["Retry waves after an outage"]
    assert "drawn over 5 s, so about 8 due in one second at first" in waves["expected"]
    assert "about 2 of each job's attempts land in the outage" in waves["expected"]
    assert waves["observed"] == "see the retry chart: retries due per second"


def test_an_outage_longer_than_every_attempt_dead_letters_everyone():
    explained = items("retry-storm", params={"outage_s": 60.0})
    assert (
        "All 5 attempts start inside the outage, so all 40 are dead-lettered."
        in (explained["Retry waves after an outage"]["expected"])
    )
    assert "so all 40 jobs" in explained["Dead-letter queue"]["expected"]


def test_an_outage_with_paced_arrivals_only_catches_those_arriving_in_it():
    explained = items("retry-storm", params={"outage_s": 2.0, "arrival_per_s": 5.0, "max_retries": 0})
    waves = explained["Retry waves after an outage"]["expected"]
    assert "(10 arriving in that window)" in waves
    assert "With no retries, all 10 are dead-lettered." in waves
    assert "so about 10 of 40 jobs" in explained["Dead-letter queue"]["expected"]


def test_a_slow_first_pass_widens_each_wave():
    waves = items("retry-storm", params={"jobs": 200, "duration_ms": 200})["Retry waves after an outage"]
    assert (
        "each as wide as the first failures (20.0 s of arrivals and work on 2 slots), about 10 due per second"
        in (waves["expected"])
    )


def test_runs_stored_before_the_outage_existed_are_explained_without_one():
    params = {k: v for k, v in PRESETS["flaky"].parameters().items() if k != "outage_s"}
    topics = [item["topic"] for item in explain(params, {}, None, 10)]
    assert "Retry waves after an outage" not in topics


def test_paced_arrivals_widen_each_wave():
    waves = items("retry-storm", params={"arrival_per_s": 4.0})["Retry waves after an outage"]["expected"]
    assert "(28 arriving in that window)" in waves  # 7 s × 4/s
    assert "2 waves of 28 retries, at +5 s, +15 s" in waves
    assert "each as wide as the first failures (7.0 s of arrivals and work on 2 slots), about 4 due per second" in waves
