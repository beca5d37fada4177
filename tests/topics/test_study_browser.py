import re

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS
from topics.models import SectionUnderstood

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHAPTER = "/topics/queueing/scalability-and-reliability/"


def shot(page, name: str) -> None:
    """A viewport screenshot (a chapter is too long for a useful full-page image)."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def watch_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_reader_marks_a_chapter_understood_and_the_contents_shows_it(live_server, page, queueing):
    errors = watch_errors(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    section = queueing.sections.get(slug="scalability-and-reliability")
    page.goto(live_server.url + CHAPTER)
    expect(page.locator("h1")).to_have_text(section.title)
    expect(page.locator('#contents a[aria-current="page"]')).to_have_text(section.title)
    shot(page, "study-chapter-desktop")

    page.evaluate("window.__noReload = true")
    form = page.locator(f"#understood-{section.slug}")
    form.get_by_role("button", name="Mark as understood").click()
    expect(form.locator(".understood-state")).to_have_text("✓ Understood")
    expect(page.locator("#progress")).to_contain_text(f"1 of {queueing.sections.count()} chapters understood")
    expect(page.locator(f"#toc-check-{section.slug}")).to_contain_text("✓")
    assert page.evaluate("window.__noReload") is True
    assert SectionUnderstood.objects.filter(section=section).count() == 1
    form.scroll_into_view_if_needed()
    shot(page, "study-chapter-understood-desktop")

    # The next chapter's contents shows the mark too, and its prev link leads back.
    page.locator(".chapter-nav").get_by_role("link", name=re.compile("Next")).click()
    expect(page.locator(f"#toc-check-{section.slug}")).to_contain_text("✓")
    page.locator(".chapter-nav").get_by_role("link", name=re.compile("Previous")).click()
    expect(page).to_have_url(live_server.url + CHAPTER)
    assert errors == []


def test_chapter_fits_a_phone_with_the_contents_folded(live_server, page, queueing):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + CHAPTER)
    contents = page.locator("#contents details")
    expect(contents).not_to_have_attribute("open", "")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "study-chapter-phone")
    page.locator("#contents summary").click()
    expect(page.locator('#contents a[aria-current="page"]')).to_be_visible()
    shot(page, "study-chapter-phone-contents")
    page.goto(live_server.url + "/topics/queueing/code-examples/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto(live_server.url + "/topics/queueing/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "study-overview-phone")


def test_an_old_anchor_on_the_topic_page_lands_on_the_chapter_heading(live_server, page, queueing):
    errors = watch_errors(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/topics/queueing/#failing-fast")
    expect(page).to_have_url(live_server.url + CHAPTER + "#failing-fast")
    expect(page.locator("h1")).to_have_text("Scalability and reliability")
    expect(page.locator("#failing-fast")).to_be_in_viewport()
    shot(page, "study-old-anchor-desktop")
    page.goto(live_server.url + "/topics/queueing/#core-concepts")  # an old section anchor
    expect(page).to_have_url(live_server.url + "/topics/queueing/core-concepts/")
    assert errors == []


def test_old_anchors_still_land_without_javascript(live_server, browser, queueing):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server.url + "/topics/queueing/#failing-fast")
    link = page.locator("#failing-fast")
    expect(link).to_be_in_viewport()
    link.click()
    expect(page).to_have_url(live_server.url + CHAPTER + "#failing-fast")
    context.close()


def test_search_result_opens_the_chapter_at_the_paragraph_with_the_words_marked(live_server, page, queueing):
    errors = watch_errors(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/search/?q=bounded+concurrency")
    shot(page, "study-search-desktop")
    page.locator(".search-hit a").first.click()
    expect(page).to_have_url(re.compile(re.escape(CHAPTER) + r"\?highlight=[^#]+#failing-fast--\d+$"))
    block_id = page.url.partition("#")[2]
    block = page.locator(f"#{block_id}")
    expect(block).to_be_in_viewport()
    expect(block).to_contain_text("A semaphore of, say, 20 in-flight calls")
    marks = block.locator("mark.search-mark")
    expect(marks.first).to_have_text(re.compile("concurrency", re.IGNORECASE))
    assert {text.lower() for text in marks.all_text_contents()} == {"concurrency", "limits"}
    shot(page, "study-search-landing-desktop")
    assert errors == []


def test_without_javascript_a_chapter_links_to_the_checklist_that_marks_it(live_server, browser, queueing):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server.url + CHAPTER)
    page.locator("#understood-scalability-and-reliability").get_by_role("link", name="Mark as understood").click()
    expect(page.locator("h1")).to_have_text(f"Your progress: {queueing.title}")
    page.locator("#understood-scalability-and-reliability").get_by_role("button", name="Mark as understood").click()
    expect(page).to_have_url(re.compile(r"/topics/queueing/checklist/#scalability-and-reliability$"))
    expect(page.locator("#understood-scalability-and-reliability .understood-state")).to_have_text("✓ Understood")
    expect(page.locator("#progress")).to_contain_text(f"1 of {queueing.sections.count()} chapters understood")
    page.screenshot(path=str(ARTIFACTS / "screenshots" / "study-checklist-nojs.png"), full_page=True)
    context.close()


def test_logged_in_reader_sees_their_account_and_marks_on_a_shared_chapter(
    live_server, page, queueing, django_user_model
):
    django_user_model.objects.create_user("zq-member", password="pw-123456-long")
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill("zq-member")
    page.get_by_label("Password").fill("pw-123456-long")
    page.get_by_role("button", name="Log in").click()
    page.goto(live_server.url + "/topics/queueing/overview/")
    expect(page.locator("#nav-account .nav-user")).to_have_text("zq-member")
    page.locator("#understood-overview").get_by_role("button", name="Mark as understood").click()
    expect(page.locator("#understood-overview .understood-state")).to_have_text("✓ Understood")
    page.goto(live_server.url + "/topics/queueing/")
    expect(page.locator("#progress")).to_contain_text(f"1 of {queueing.sections.count()} chapters understood")
    expect(page.locator("#toc-check-overview")).to_contain_text("✓")
    expect(page.locator("#nav-account")).not_to_contain_text("Log in")


def test_study_in_the_nav_opens_the_one_topics_chapter_list(live_server, page, queueing):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/")
    page.locator("header nav").get_by_role("link", name="Study", exact=True).click()
    expect(page).to_have_url(live_server.url + queueing.get_absolute_url())
    expect(page.locator("h1")).to_have_text(queueing.title)
    shot(page, "study-nav-lands-on-chapters-desktop")


def test_reader_marks_sections_of_a_chapter_and_the_count_rolls_up(live_server, page, queueing):
    errors = watch_errors(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    section = queueing.sections.get(slug="scalability-and-reliability")
    total = len(section.parts)
    page.goto(live_server.url + CHAPTER)
    rollup = page.locator("#parts-rollup")
    expect(rollup).to_have_text(f"0 of {total} sections of this chapter understood")
    parts = page.locator("#parts")
    for part in section.parts[:2]:
        parts.get_by_role("button", name=f"Understood: {part['title']}").click()
        expect(page.locator(f"#part-{part['id']} .understood-state")).to_have_text("✓ Understood")
    expect(rollup).to_have_text(f"2 of {total} sections of this chapter understood")
    parts.get_by_role("button", name=f"Undo: mark {section.parts[0]['title']} as not understood").click()
    expect(rollup).to_have_text(f"1 of {total} sections of this chapter understood")
    parts.scroll_into_view_if_needed()
    shot(page, "study-sections-understood-desktop")
    page.reload()
    expect(rollup).to_have_text(f"1 of {total} sections of this chapter understood")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "study-sections-rollup-desktop")
    assert errors == []
