import re
import time

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_ms
from topics.models import Question

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def partial_outages(content) -> Question:
    return content.get(slug="partial-outages")


def test_drill_one_question_end_to_end_without_reload(live_server, page, screenshot, partial_outages):
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(live_server.url + partial_outages.get_absolute_url())
    assert page.locator("h1").inner_text() == partial_outages.prompt
    assert page.locator(".model-answer").count() == 0
    page.evaluate("window.__noReload = 'still here'")

    # expect() polls from Python: wait_for_function would need eval, which our CSP forbids.
    expect(page.locator("[data-timer-value]")).not_to_have_text("0:00", timeout=wait_ms(5000))
    page.fill("textarea[name=answer]", "Put each dependency behind a BULKHEAD, add a circuit-breaker, and timeouts.")
    screenshot("drills-question")
    page.click("button[value=submit]")

    page.wait_for_selector(".model-answer")
    assert re.search(r"/attempt/[0-9a-f-]+/$", page.url)
    boxes = page.locator("input[name=ticked]")
    checked = [boxes.nth(i).is_checked() for i in range(boxes.count())]
    assert checked[:4] == [False, True, True, True]  # bulkheads, circuit breaker, timeouts matched
    assert page.locator(".matched-words mark", has_text="BULKHEAD").count() == 1
    page.locator("label.point", has_text="Enumerates concrete partial-failure modes").click()
    page.locator("label.point", has_text="Circuit breaker").click()
    assert boxes.nth(0).is_checked()
    assert not boxes.nth(2).is_checked()
    screenshot("drills-reveal")

    page.click("button.rate-3")
    page.wait_for_selector("[data-next-due]")
    assert re.fullmatch(r"\d+ (minute|hour|day)s?", page.locator("[data-next-due]").inner_text())
    assert page.evaluate("window.__noReload") == "still here"
    page.evaluate("window.scrollTo(0, 0)")
    screenshot("drills-rated")

    page.set_viewport_size({"width": 390, "height": 800})
    screenshot("drills-rated-mobile")
    page.set_viewport_size({"width": 1200, "height": 900})

    page.goto(live_server.url + "/drills/progress/")
    assert page.locator("svg[role=img] rect.bar").count() == 30
    screenshot("drills-progress")
    page.goto(live_server.url + "/drills/")
    screenshot("drills-home")
    page.goto(live_server.url + "/topics/queueing/drill/")
    screenshot("drills-topic")
    assert errors == []


def test_mock_interview_notes_autosave_and_survive_reload(live_server, page, screenshot, partial_outages):
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(live_server.url + "/drills/mock/")
    page.select_option("select[name=question]", str(partial_outages.pk))
    page.click("button[type=submit]")
    page.wait_for_selector("[data-mock-clock]:not([hidden])")
    page.fill("#notes-requirements", "")
    page.type("#notes-requirements", "at-least-once, p99 < 2s")
    page.wait_for_selector("#status-requirements:has-text('Saved at')", timeout=wait_ms(5000))
    expect(page.locator("#phase-requirements [data-countdown]")).to_contain_text("left")
    screenshot("drills-mock")
    page.reload()
    assert page.input_value("#notes-requirements") == "at-least-once, p99 < 2s"


def test_signing_up_in_the_browser_keeps_anonymous_progress(live_server, page, screenshot, partial_outages):
    from topics.drills.models import Card

    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(live_server.url + partial_outages.get_absolute_url())
    page.click("button[value=give_up]")
    page.click("button.rate-1")
    page.wait_for_selector("[data-next-due]")
    page.goto(live_server.url + "/accounts/signup/")
    screenshot("drills-signup")
    page.fill("input[name=username]", "browser-user")
    page.fill("input[name=password1]", "a-long-enough-passphrase-42")
    page.fill("input[name=password2]", "a-long-enough-passphrase-42")
    page.click("main button[type=submit]")
    page.wait_for_selector(".nav-user")
    assert page.locator(".nav-user").inner_text() == "browser-user"
    screenshot("drills-logged-in")
    assert Card.objects.get().user.username == "browser-user"
    page.click("text=Log out")
    page.wait_for_selector("text=Log in")


def page_scroll_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_drill_and_progress_pages_do_not_scroll_sideways_on_a_390px_phone(live_server, page, screenshot, content):
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(live_server.url + "/drills/progress/")
    expect(page.locator(".chart-empty")).to_contain_text("No reviews yet — drill a question to start your streak")
    assert page.locator("svg.bar-chart").count() == 0
    assert page_scroll_width(page) <= 390
    screenshot("drills-progress-empty-mobile")

    page.goto(live_server.url + "/topics/queueing/drill/")
    expect(page.locator(".drill-table")).to_be_visible()
    assert page_scroll_width(page) <= 390
    screenshot("drills-topic-mobile")

    first = page.locator(".drill-table a").first
    first.click()
    page.click("button[value=give_up]")
    page.click("button.rate-1")
    expect(page.locator("[data-next-due]")).to_be_visible()
    assert page_scroll_width(page) <= 390
    screenshot("drills-rated-again-mobile")
    next_href = page.locator("[data-next-question]").get_attribute("href")
    assert next_href != "/drills/"
    assert "/drill/" in next_href

    page.goto(live_server.url + "/drills/progress/")
    expect(page.locator("svg.bar-chart rect.bar")).to_have_count(30)
    expect(page.locator(".progress-table")).to_contain_text("reviewed under a day ago")
    assert page_scroll_width(page) <= 390
    screenshot("drills-progress-mobile")


def test_mock_notes_typed_without_keyup_are_autosaved(live_server, page, partial_outages):
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(live_server.url + "/drills/mock/")
    page.select_option("select[name=question]", str(partial_outages.pk))
    page.click("button[type=submit]")
    page.wait_for_selector("[data-mock-clock]:not([hidden])")
    # fill() fires input but no key events, like paste, autofill and dictation do.
    page.fill("#notes-requirements", "pasted: exactly-once is a lie")
    expect(page.locator("#status-requirements")).to_contain_text("Saved at", timeout=wait_ms(5000))
    page.reload()
    assert page.input_value("#notes-requirements") == "pasted: exactly-once is a lie"


ACTIVE_ID = "document.activeElement ? document.activeElement.id : ''"


def active_id(page, expected: str, timeout: float = 3.0) -> str:
    """The focused element's id once it is `expected` (htmx focuses [autofocus] a moment after a swap)."""
    deadline = time.monotonic() + timeout
    while page.evaluate(ACTIVE_ID) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    return page.evaluate(ACTIVE_ID)


def test_rating_buttons_show_intervals_and_focus_follows_each_step(live_server, page, screenshot, partial_outages):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + partial_outages.get_absolute_url())
    page.evaluate("window.__noReload = 'still here'")
    page.fill("textarea[name=answer]", "Bulkheads per dependency, a circuit breaker, timeouts with a retry budget.")
    page.click("button[value=submit]")
    expect(page.locator(".model-answer")).to_be_visible()
    assert active_id(page, "result") == "result"
    expect(page.locator("#result")).to_have_attribute("tabindex", "-1")
    page.screenshot(path=str(screenshot_path("drills-result")))

    # Named by what they show (WCAG 2.5.3: "click Again 1m" works by voice), the interval in words described.
    good = page.locator("button.rate-3")
    expect(good).to_have_accessible_name("Good 10m")
    expect(good).to_have_accessible_description("next review in 10 minutes")
    expect(good.locator(".rate-interval")).to_have_text("10m")
    expect(page.locator("button.rate-1")).to_have_accessible_name(re.compile(r"^Again 1m( suggested)?$"))
    expect(page.locator("button.rate-1")).to_have_accessible_description("next review in 1 minute")
    expect(page.locator("button.rate-4")).to_have_accessible_description(re.compile(r"^next review in \d+ days$"))
    # Coverage, the rubric and the ratings come before the long model answer (issue #23).
    tops = [
        page.locator(s).bounding_box()["y"]
        for s in (".coverage", "fieldset.rubric", ".rating-buttons", ".model-answer")
    ]
    assert tops == sorted(tops)
    page.locator(".rating-buttons").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_path("drills-rating-intervals")))
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator(".rating-buttons").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_path("drills-rating-intervals-mobile")))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})

    good.click()
    expect(page.locator("[data-next-due]")).to_have_text("10 minutes")
    assert active_id(page, "outcome") == "outcome"
    assert page.evaluate("window.__noReload") == "still here"
    page.keyboard.press("Tab")
    expect(page.locator("[data-next-question]")).to_be_focused()


def test_focus_follows_each_step_without_javascript(live_server, browser, partial_outages):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(live_server.url + partial_outages.get_absolute_url())
        page.fill("textarea[name=answer]", "Bulkheads and a circuit breaker.")
        page.click("button[value=submit]")
        page.wait_for_url(re.compile(r"/attempt/[0-9a-f-]+/$"))
        assert active_id(page, "result") == "result"
        expect(page.locator("button.rate-2")).to_have_accessible_name(re.compile(r"^Hard \d+m( suggested)?$"))
        expect(page.locator("button.rate-2")).to_have_accessible_description(
            re.compile(r"^next review in \d+ minutes$")
        )
        page.click("button.rate-2")
        page.wait_for_selector("[data-next-due]")
        assert active_id(page, "outcome") == "outcome"
        assert page.locator("#outcome").is_visible()
    finally:
        context.close()


def screenshot_path(name: str):
    from tests.conftest import ARTIFACTS

    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


def start_mock_in_browser(page, live_server, question: Question):
    from topics.drills.models import MockInterview

    page.goto(live_server.url + "/drills/mock/")
    page.select_option("select[name=question]", str(question.pk))
    page.click("main button[type=submit]")
    page.wait_for_selector("[data-mock-clock]:not([hidden])")
    return MockInterview.objects.get()


def test_finished_mock_lays_notes_beside_the_model_answer(live_server, page, screenshot, content):
    design = content.filter(kind="design").order_by("slug").first()
    page.set_viewport_size({"width": 1280, "height": 900})
    mock = start_mock_in_browser(page, live_server, design)
    page.fill("#notes-requirements", "At-least-once, per-tenant order, 7-day retention.")
    page.fill("#notes-estimates", "50k msg/s peak x 2 KB = 100 MB/s; 3 replicas.")
    page.fill("#notes-deep_dive", "Leases with heartbeats; idempotency keys; DLQ + redrive.")
    expect(page.locator("#status-deep_dive")).to_contain_text("Saved at", timeout=wait_ms(5000))
    expect(page.locator("#finish label.point")).to_have_count(0)  # the rubric comes after Finish
    page.click("#finish button[type=submit]")
    expect(page.locator("#mock-review")).to_be_visible()
    assert active_id(page, "finish-status") == "finish-status"
    rows = page.locator(".compare")
    expect(rows).to_have_count(5)
    notes, model = rows.nth(0).locator(".compare-notes"), rows.nth(0).locator(".compare-model")
    expect(notes).to_contain_text("At-least-once, per-tenant order")
    side_by_side = notes.bounding_box(), model.bounding_box()
    assert side_by_side[0]["x"] + side_by_side[0]["width"] <= side_by_side[1]["x"]
    assert abs(side_by_side[0]["y"] - side_by_side[1]["y"]) < 2
    expect(page.locator("#curveballs li").first).to_be_visible()  # finishing early reveals them (out of band)
    show = "el => el.scrollIntoView({block: 'start'})"
    rows.nth(0).evaluate(show)
    page.screenshot(path=str(screenshot_path("drills-mock-finished")))
    rows.nth(1).evaluate(show)
    page.screenshot(path=str(screenshot_path("drills-mock-finished-estimates")))
    page.set_viewport_size({"width": 390, "height": 844})
    stacked = notes.bounding_box(), model.bounding_box()
    assert stacked[1]["y"] >= stacked[0]["y"] + stacked[0]["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    rows.nth(0).evaluate(show)
    page.screenshot(path=str(screenshot_path("drills-mock-finished-mobile")))
    assert mock.pk
