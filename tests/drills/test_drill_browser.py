import re

import pytest
from playwright.sync_api import expect

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
    expect(page.locator("[data-timer-value]")).not_to_have_text("0:00", timeout=5000)
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
    page.wait_for_selector("#status-requirements:has-text('Saved at')", timeout=5000)
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
    expect(page.locator("#status-requirements")).to_contain_text("Saved at", timeout=5000)
    page.reload()
    assert page.input_value("#notes-requirements") == "pasted: exactly-once is a lie"
