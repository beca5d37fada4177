"""The live view as a learner uses it (real Chromium, real workers): predict, watch on a time axis,
fix and redrive, double charges in red, the jitter pair, focus that stays put, one announcement."""

import re

import pytest
from playwright.sync_api import Page, expect

from sandbox.engine import live
from sandbox.engine.fault_plan import FaultPlan
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from tests.conftest import ARTIFACTS, STOP_SAID, wait_ms
from tests.sandbox.helpers import run_story

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shots(page: Page, name: str) -> None:
    """Desktop and phone, full page: the views the issue asks to look at."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header would sit mid-page in a full-page shot
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(folder / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(folder / f"{name}-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, f"{name} scrolls sideways on a phone"
    page.set_viewport_size({"width": 1280, "height": 900})


def start(page: Page, base: str, preset: str, predict: dict | None = None, **params) -> int:
    page.goto(f"{base}/sandbox/?preset={preset}")
    for key, value in (predict or {}).items():
        page.locator(f"#id_predict-{key}").fill(str(value))
    if params and not page.locator("details.params").evaluate("el => el.open"):
        page.locator("details.params summary").click()
    for name, value in params.items():
        field = page.locator(f"#id_{name}")
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(str(value))
        else:
            field.fill(str(value))
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(re.compile(r"/sandbox/experiments/\d+/$"))
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def counter(page: Page, name: str):
    return page.locator(f'[data-counter="{name}"] .n')


def finished(page: Page, timeout: float = 60_000) -> None:
    expect(page.locator("#h-counters")).to_contain_text("finished", timeout=timeout)


def test_poison_run_predicted_watched_on_a_time_axis_then_fixed_and_redriven_to_success(live_server, page, rq_workers):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    run = start(
        page, live_server.url, "poison", predict={"dead_lettered": 4, "attempts_per_job": 2},
        jobs=4, max_retries=1, backoff="fixed", backoff_base_s=1, backoff_cap_s=1, duration_ms=50, duration_spread_ms=0,
    )  # fmt: skip
    page.evaluate("window.__marker = 1")
    expect(page.locator("#dlq-count")).to_have_text("4", timeout=wait_ms(40_000))
    finished(page)
    # The attempts on a real time axis: two error bars per job, a wait line between them.
    expect(page.locator("svg.lanes .lane-bar.mark-error")).to_have_count(8)
    expect(page.locator("svg.lanes .lane-wait")).to_have_count(4)
    # The payoff first: the lesson, with the prediction next to what happened.
    lesson = page.locator("#panel-lesson")
    expect(lesson.locator('[data-prediction="dead_lettered"]')).to_contain_text("spot on")
    first_panel = page.locator("section.panel").first
    expect(first_panel).to_have_id("panel-lesson")
    shots(page, "live-poison-finished")

    expect(page.locator("#lab-flash")).to_contain_text("Finished:")
    page.locator("#fix-consumer").click()
    expect(page.locator("#lab-flash")).to_contain_text("Fixed")
    expect(page.locator("#lab-flash")).not_to_contain_text("Finished:")  # the poll said it: once is enough
    page.locator("#redrive-all").click()
    try:
        expect(counter(page, "succeeded")).to_have_text("4", timeout=wait_ms(30_000))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run_story(run)}") from exc
    expect(page.locator("#dlq-count")).to_have_text("0")
    finished(page)
    expect(page.locator("svg.lanes .lane-bar.mark-ok")).to_have_count(4)
    assert page.evaluate("window.__marker") == 1, "the page reloaded"
    shots(page, "live-poison-fixed-and-redriven")
    assert errors == []


def test_duplicates_without_idempotency_draw_double_charges_in_red(live_server, page, rq_workers):
    # A fixed seed: the fault plan then says which of the 10 messages are delivered twice (a random seed
    # leaves a 1-in-1,024 chance of none at all).
    params = {**PRESETS["duplicates"].parameters(), "jobs": 10, "idempotency": "off", "duration_ms": 30}
    planned = sum(FaultPlan.from_params(7, params).delivered_twice(job) for job in range(1, 11))
    assert planned >= 1
    start(
        page, live_server.url, "duplicates", predict={"double_charges": 5}, jobs=10, idempotency="off", duration_ms=30,
        seed=7,
    )  # fmt: skip
    finished(page)
    doubles = int(counter(page, "double_charges").text_content())  # under "All counters", folded
    assert doubles == planned
    expect(page.locator('[data-counter="double_charges"]')).to_have_class(re.compile(r"\berr\b"))
    expect(page.locator("svg.lanes .lane-bar.mark-double")).to_have_count(doubles)
    red = page.locator("svg.lanes .lane-bar.mark-double").first.evaluate("el => getComputedStyle(el).fill")
    ok = page.locator("svg.lanes .lane-bar.mark-ok").first.evaluate("el => getComputedStyle(el).fill")
    assert red != ok
    assert red == "rgb(179, 38, 30)"
    shots(page, "live-duplicates-idempotency-off")


def test_the_jitter_pair_shows_a_synchronised_wave_and_its_spread(live_server, page, lab_engine):
    """The runs go through the UI; the in-process engine runs them (on its still clock, so the waves
    are exact: waves of 20 without jitter, the same outage spread out with it)."""
    page.goto(f"{live_server.url}/sandbox/?preset=retry-storm")
    if not page.locator("details.params").evaluate("el => el.open"):
        page.locator("details.params summary").click()
    page.locator("#id_jobs").fill("20")
    page.locator("#id_seed").fill("7")  # a fixed seed: full jitter's peak is then the same on every run
    page.get_by_role("button", name="Run it twice: no jitter vs full jitter").click()
    page.wait_for_url(re.compile(r"/sandbox/compare/\?a=\d+&b=\d+$"))
    ids = [int(x) for x in re.findall(r"=(\d+)", page.url)]
    none, full = (Experiment.objects.get(pk=pk) for pk in ids)
    assert (none.params["jitter"], full.params["jitter"]) == ("none", "full")
    assert none.seed == full.seed == 7
    lab_engine.finish_all(none, full)
    expect(page.locator("#compare-body")).not_to_contain_text("running", timeout=wait_ms(20_000))
    for pk in ids:  # the page shows each run's own numbers
        hist = live.read(pk).retry_hist
        assert int(page.locator(f"#waves-{pk} [data-peak]").inner_text()) == max(hist.values())
        assert int(page.locator(f"#waves-{pk} [data-seconds]").inner_text()) == len(hist)
    peaks = [int(page.locator(f"#waves-{pk} [data-peak]").inner_text()) for pk in ids]
    spread = [int(page.locator(f"#waves-{pk} [data-seconds]").inner_text()) for pk in ids]
    assert none.params["jobs"] == 20
    assert peaks[0] == 20  # every retry of the wave due in one second
    assert peaks[1] < peaks[0] / 2
    assert spread[1] >= 4 * spread[0]
    expect(page.locator(f"#waves-{ids[0]} svg.chart")).to_be_visible()
    expect(page.locator(f"#waves-{ids[1]} svg.chart")).to_be_visible()
    shots(page, "compare-jitter-pair")


def test_focus_stays_on_stop_experiment_across_ten_updates_and_the_outcome_is_announced_once(
    live_server, page, rq_workers
):
    # Arrivals over 20 s: ten updates take 10 s or more, and the Stop after them must still find jobs to stop.
    pk = start(
        page, live_server.url, "happy", jobs=40, arrival_per_s=2, concurrency=1, duration_ms=150, duration_spread_ms=0
    )
    page.evaluate("""() => {
        window.__swaps = 0;
        document.body.addEventListener('htmx:oobAfterSwap', e => { if (e.detail.target.id === 'panel-counters') window.__swaps++; });
        window.__said = [];
        new MutationObserver(() => window.__said.push(document.getElementById('lab-flash').textContent))
            .observe(document.getElementById('lab-flash'), {childList: true, characterData: true, subtree: true});
    }""")
    stop = page.locator("#stop-experiment")
    stop.focus()
    for _ in range(300):  # (wait_for_function evaluates a string: the page's CSP forbids that)
        if page.evaluate("window.__swaps") >= 10:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("window.__swaps") >= 10
    assert page.evaluate("document.activeElement.id") == "stop-experiment"
    page.keyboard.press("Enter")  # still the same button: the keyboard acts on it
    finished(page)
    page.wait_for_timeout(2500)  # later polls must not announce it again
    said = page.evaluate("window.__said")
    # The stop was acknowledged: its confirmation, or the outcome when a poll answered first (STOP_SAID).
    assert any(STOP_SAID.search(text) for text in said), said
    assert sum(1 for text in said if "Stopped early (not scored):" in text) == 1, said  # it was stopped
    assert Experiment.objects.get(pk=pk).summary["stopped"] >= 1


def test_run_it_again_reproduces_the_parameters_and_the_seed(live_server, page, rq_workers):
    base = live_server.url
    first = start(page, base, "happy", jobs=7, seed=424242, idempotency="off", duration_ms=40)
    finished(page)
    page.get_by_role("link", name="Run it again").click()
    expect(page.locator("#id_jobs")).to_have_value("7")
    expect(page.locator("#id_seed")).to_have_value("424242")
    expect(page.locator("#id_idempotency")).to_have_value("off")
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(re.compile(r"/sandbox/experiments/\d+/$"))
    second = int(page.url.rstrip("/").rsplit("/", 1)[1])
    a, b = Experiment.objects.get(pk=first), Experiment.objects.get(pk=second)
    assert second != first
    assert (b.params, b.seed) == (a.params, a.seed)


def test_a_poll_answered_after_an_action_replaced_its_poller_is_dropped_without_errors(live_server, page, lab_engine):
    """An action's answer carries a new poller; a poll still in flight from the old one used to look for its
    panels inside the detached poller and log htmx:oobErrorNoTarget for each (seen under load)."""
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    start(page, live_server.url, "poison")
    held = []

    def hold_the_first_poll(route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r"/sandbox/experiments/\d+/live/"), hold_the_first_poll)
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "no poll was made"
    page.locator("#fix-consumer").click()  # its answer replaces the poller while the held poll is in flight
    expect(page.locator("#lab-flash")).to_contain_text("Fixed: the consumer", timeout=wait_ms(10_000))
    held[0].continue_()
    page.wait_for_timeout(1500)  # the held poll's answer, and the next poll's
    assert not [text for text in errors if "oobErrorNoTarget" in text], errors
    assert page.locator("#poller").count() == 1


def test_an_actions_answer_arriving_after_a_morph_removed_its_button_still_reaches_the_page(
    live_server, page, lab_engine
):
    """A Stop clicked as the run ends: a poll's morph can remove the button while its request is on the way. htmx would
    look for the answer's panels inside the detached button (an error each) and the confirmation would be lost; the
    live view swaps such an answer into the page itself."""
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    start(page, live_server.url, "poison")
    held = []
    page.route(re.compile(r"/sandbox/experiments/\d+/fix/"), lambda route: held.append(route))
    page.locator("#fix-consumer").click()
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the fix was not requested"
    page.evaluate("document.getElementById('fix-consumer').remove()")  # as a morph removes a button gone from the run
    held[0].continue_()
    expect(page.locator("#lab-flash")).to_contain_text("Fixed: the consumer", timeout=wait_ms(10_000))
    assert not [text for text in errors if "oobErrorNoTarget" in text], errors
