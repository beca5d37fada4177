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
    expect(page.locator("section.study-section > h2")).to_have_count(queueing.sections.count())
    shot(page, "study-topic-desktop")

    # The diagram's Queue box jumps to the section (or heading) that explains queues.
    page.locator("#diagram").scroll_into_view_if_needed()
    shot(page, "study-diagram-desktop")
    queue_node = page.locator('svg a[data-node="queue"]')
    href = queue_node.get_attribute("href")
    assert href.startswith("/topics/queueing/#")
    target = "#" + href.partition("#")[2]
    page.evaluate("window.__sameDocument = true")
    queue_node.click()
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))
    expect(page.locator(target)).to_be_in_viewport()
    assert page.evaluate("window.__sameDocument") is True  # a jump within the page, not a reload
    shot(page, "study-diagram-target-desktop")

    # Mark the first section understood: htmx swaps the form in place, the page does not reload.
    page.evaluate("window.__noReload = true")
    form = page.locator("#understood-overview")
    form.get_by_role("button", name="Mark as understood").click()
    expect(form.locator(".understood-state")).to_have_text("✓ Understood")
    expect(page.locator("#progress")).to_contain_text(f"1 of {queueing.sections.count()} sections understood")
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


def test_without_javascript_the_topic_page_links_to_a_checklist_that_marks_sections(live_server, browser, queueing):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server.url + "/topics/queueing/")
    expect(page.locator("section.study-section > h2")).to_have_count(queueing.sections.count())
    page.locator("#understood-scalability-and-reliability").get_by_role("link", name="Mark as understood").click()
    expect(page.locator("h1")).to_have_text(f"Your progress: {queueing.title}")
    page.locator("#understood-scalability-and-reliability").get_by_role("button", name="Mark as understood").click()
    expect(page).to_have_url(re.compile(r"/topics/queueing/checklist/#scalability-and-reliability$"))
    expect(page.locator("#understood-scalability-and-reliability .understood-state")).to_have_text("✓ Understood")
    expect(page.locator("#progress")).to_contain_text(f"1 of {queueing.sections.count()} sections understood")
    page.screenshot(path=str(ARTIFACTS / "screenshots" / "study-checklist-nojs.png"), full_page=True)
    context.close()


def test_logged_in_reader_sees_their_account_and_marks_on_the_shared_topic_page(
    live_server, page, queueing, django_user_model
):
    django_user_model.objects.create_user("zq-member", password="pw-123456-long")
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill("zq-member")
    page.get_by_label("Password").fill("pw-123456-long")
    page.get_by_role("button", name="Log in").click()
    page.goto(live_server.url + "/topics/queueing/")
    expect(page.locator("#nav-account .nav-user")).to_have_text("zq-member")
    page.locator("#understood-overview").get_by_role("button", name="Mark as understood").click()
    expect(page.locator("#understood-overview .understood-state")).to_have_text("✓ Understood")
    page.reload()
    expect(page.locator("#progress")).to_contain_text(f"1 of {queueing.sections.count()} sections understood")
    expect(page.locator("#toc-check-overview")).to_have_text("✓")
    expect(page.locator("#nav-account")).not_to_contain_text("Log in")
