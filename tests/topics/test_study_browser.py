import re

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS
from topics.models import SectionUnderstood

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shot(page, name: str) -> None:
    """A viewport screenshot (the deep dive is too long for a useful full-page image)."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def test_reader_follows_the_diagram_and_marks_a_section_understood(live_server, page, queueing, screenshot):
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/topics/queueing/")
    expect(page.locator("h1")).to_have_text(queueing.title)
    expect(page.locator("section.study-section > h2")).to_have_count(10)
    shot(page, "study-topic-desktop")

    # The diagram's Queue box jumps to the section (or heading) that explains queues.
    page.locator("#diagram").scroll_into_view_if_needed()
    shot(page, "study-diagram-desktop")
    queue_node = page.locator('svg a[data-node="queue"]')
    target = queue_node.get_attribute("href")
    assert target.startswith("#")
    queue_node.click()
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))
    expect(page.locator(target)).to_be_in_viewport()
    shot(page, "study-diagram-target-desktop")

    # Mark the first section understood: htmx swaps the form in place, the page does not reload.
    page.evaluate("window.__noReload = true")
    form = page.locator("#understood-overview")
    form.get_by_role("button", name="Mark as understood").click()
    expect(form.locator(".understood-state")).to_have_text("✓ Understood")
    expect(page.locator("#progress")).to_contain_text("1 of 10 sections understood")
    expect(page.locator("#toc-check-overview")).to_have_text("✓")
    assert page.evaluate("window.__noReload") is True
    assert SectionUnderstood.objects.filter(section__slug="overview").count() == 1
    form.scroll_into_view_if_needed()
    shot(page, "study-understood-desktop")

    # It survives a reload (the mark is in the database, keyed to the session).
    page.reload()
    expect(page.locator("#understood-overview .understood-state")).to_have_text("✓ Understood")
    assert errors == []


def test_topic_page_and_search_fit_a_phone(live_server, page, queueing, screenshot):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + "/topics/queueing/")
    shot(page, "study-topic-phone")
    page.locator("#diagram").scroll_into_view_if_needed()
    shot(page, "study-diagram-phone")
    page.goto(live_server.url + "/topics/queueing/#code-examples")
    shot(page, "study-code-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto(live_server.url + "/search/?q=retry+budget")
    expect(page.locator(".search-hit").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "study-search-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/search/?q=dead+letter")
    screenshot("study-search-desktop")
    page.goto(live_server.url + "/topics/")
    screenshot("study-topics-desktop")
