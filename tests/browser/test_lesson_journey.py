"""Issue #22's journey in a real Chromium: choose poison by keyboard, predict, run, read the lesson above the
fold on a desktop and a phone, press Try next; then a redrive that leaves the score alone and a stopped run
that is not scored. The in-process engine runs the jobs (the subject is the page, not the workers)."""

import re

import pytest
from playwright.sync_api import Page, expect

from sandbox.models import Experiment
from tests.conftest import ARTIFACTS, STOP_SAID, wait_ms

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SHOTS = ARTIFACTS / "screenshots"


def shot(page: Page, name: str, *, full: bool = False) -> None:
    """The viewport as a visitor sees it (what is above the fold), or the whole page."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"lesson-{name}.png"), full_page=full)


def above_the_fold(page: Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    height = page.viewport_size["height"]
    assert box is not None, selector
    assert box["y"] >= 0, f"{selector} at {box}: above the top"
    assert box["y"] + box["height"] <= height, f"{selector} at {box}, below a viewport {height} px high"


def run_id(page: Page) -> int:
    return int(re.search(r"/experiments/(\d+)/", page.url).group(1))


def verdict(page: Page, key: str):
    return page.locator(f'#score tr[data-prediction="{key}"] .verdict')


def test_predict_run_read_the_lesson_try_next_redrive_and_stop(live_server, page, lab_engine):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/sandbox/")

    # Choose poison by keyboard: focus lands on the first prediction, the givens beside it.
    card = page.locator("#preset-poison")
    expect(card).not_to_contain_text("12")
    card.get_by_role("link", name=re.compile("Predict and start")).focus()
    page.keyboard.press("Enter")
    expect(page.locator("#id_predict-dead_lettered")).to_be_focused(timeout=wait_ms(5_000))
    expect(page.locator("#givens")).to_contain_text("12")
    shot(page, "1-predict-desktop")
    page.keyboard.type("12")
    page.keyboard.press("Tab")
    expect(page.locator("#id_predict-attempts_per_job")).to_be_focused()
    page.keyboard.type("4")
    for _ in range(2):  # past the note, Start is next: the parameters come after it
        page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Start experiment")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/sandbox/experiments/\d+/$"))
    poison = Experiment.objects.get(pk=run_id(page))
    expect(page.locator("#run-status")).to_contain_text("running")
    expect(page.locator("#stop-experiment")).to_be_visible()
    above_the_fold(page, "#stop-experiment")  # Stop sits by the status
    shot(page, "2-running-desktop")

    # The run finishes: the lesson card is the first screen, on a desktop and on a phone.
    lab_engine.finish(poison)
    headline = page.locator("#lesson-headline")
    expect(headline).to_contain_text(
        "All 12 of 12 jobs ended in the DLQ after 4 attempts each", timeout=wait_ms(10_000)
    )
    expect(verdict(page, "dead_lettered")).to_have_text("spot on")
    expect(verdict(page, "attempts_per_job")).to_have_text("spot on")
    expect(page.locator("#stop-experiment")).to_have_count(0)
    for selector in ("#h-lesson", "#lesson-headline", "#score", "#try-next"):
        above_the_fold(page, selector)
    shot(page, "3-lesson-desktop")
    shot(page, "3-lesson-desktop-full", full=True)
    page.set_viewport_size(PHONE)
    page.goto(page.url)  # a phone opening the result
    for selector in ("#h-lesson", "#lesson-headline"):
        above_the_fold(page, selector)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "3-lesson-phone")
    shot(page, "3-lesson-phone-full", full=True)

    # The "why?" question before the explanation.
    page.locator(".why-option").first.locator("input").check()
    page.locator("#why-check").click()
    expect(page.locator("#why-verdict")).to_be_visible(timeout=wait_ms(5_000))
    expect(page.locator("#explanation")).to_contain_text("Retrying cannot fix a poison message")
    page.set_viewport_size(DESKTOP)

    # Try next: the one-knob variant starts and links back for the comparison.
    page.goto(f"{live_server.url}/sandbox/experiments/{poison.pk}/")
    page.locator("#try-next").click()
    page.wait_for_url(lambda url: f"/experiments/{poison.pk}/" not in url)
    variant = Experiment.objects.get(pk=run_id(page))
    assert variant.rerun_of_id == poison.pk
    assert variant.params["max_retries"] == 0
    lab_engine.finish(variant)
    expect(page.locator("#lesson-headline")).to_contain_text("after 1 attempts each", timeout=wait_ms(10_000))
    expect(page.locator("#compare-with")).to_have_text(f"Compare with #{poison.pk}")
    shot(page, "4-try-next-desktop")
    compare_url = page.locator("#compare-with").get_attribute("href")
    page.locator("#try-next").click()  # drawn by a live update (no form token): htmx's header carries CSRF
    page.wait_for_url(lambda url: f"/experiments/{variant.pk}/" not in url)
    assert Experiment.objects.get(pk=run_id(page)).rerun_of_id == variant.pk
    page.goto(live_server.url + compare_url)
    expect(page.locator("#compare-predictions")).to_be_visible()
    expect(page.locator("#params-differ tbody tr")).to_have_count(1)
    shot(page, "5-compare-desktop", full=True)

    # Fix and redrive the first run: the first-pass score stays, the redrive is its own row.
    page.goto(f"{live_server.url}/sandbox/experiments/{poison.pk}/")
    page.locator("#fix-consumer").click()
    expect(page.locator("#consumer-fixed")).to_be_visible(timeout=wait_ms(5_000))
    page.locator("#redrive-all").click()
    expect(page.locator("#lab-flash")).to_contain_text("Redrove 12 jobs", timeout=wait_ms(5_000))
    lab_engine.run_until(lambda: Experiment.objects.get(pk=poison.pk).summary.get("redriven") == 12)
    expect(page.locator("#after-label")).to_contain_text("After your redrive of 12 jobs", timeout=wait_ms(10_000))
    expect(verdict(page, "dead_lettered")).to_have_text("spot on")
    expect(verdict(page, "attempts_per_job")).to_have_text("spot on")
    expect(page.locator('tr[data-after="dead_lettered"]')).to_contain_text("0 jobs")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "6-redriven-desktop")
    page.set_viewport_size(PHONE)
    page.locator("#score").scroll_into_view_if_needed()
    shot(page, "6-redriven-phone")
    page.set_viewport_size(DESKTOP)

    # A run stopped early is not scored.
    page.goto(f"{live_server.url}/sandbox/?preset=poison")
    page.locator("#id_predict-dead_lettered").fill("12")
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(re.compile(r"/sandbox/experiments/\d+/$"))
    stopped = Experiment.objects.get(pk=run_id(page))
    page.locator("#stop-experiment").click()
    expect(page.locator("#lab-flash")).to_contain_text(STOP_SAID, timeout=wait_ms(5_000))
    lab_engine.finish(stopped)
    expect(page.locator("#run-status")).to_contain_text("stopped early: not scored", timeout=wait_ms(10_000))
    expect(verdict(page, "dead_lettered")).to_have_text("not scored")
    expect(page.locator("#lesson-headline")).to_contain_text("Stopped early: not scored.")
    expect(page.locator("#try-next")).to_have_count(0)
    shot(page, "7-stopped-desktop")
    page.set_viewport_size(PHONE)
    shot(page, "7-stopped-phone")

    # A beginner picks each number from four choices.
    page.goto(f"{live_server.url}/sandbox/?preset=poison")
    page.locator("#mode-choices").click()
    expect(page.locator('input[name="predict-dead_lettered"][type="radio"]')).to_have_count(4, timeout=wait_ms(5_000))
    page.locator("#start-panel").scroll_into_view_if_needed()
    shot(page, "8-choices-phone")
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/sandbox/")
    shot(page, "9-home-desktop")
    assert errors == []
