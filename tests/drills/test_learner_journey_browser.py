"""Issue #23's journey as a new visitor, in Chromium: a plan to a date 14 days out at Staff level, Home's Day 1
and Continue, reading half a chapter and coming back to it, staff questions first, pasted "listens for" phrases
not credited, key 2 rating, and sign-up keeping the plan, the position and the rating."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.conftest import wait_for, wait_ms
from topics.drills.models import Card, LearnerPlan, Review
from topics.models import Question, ReadingPosition

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def both_sizes(page, screenshot, name: str) -> None:
    """Full-page screenshots at 1280x800 and 390x844, and what the first screen shows at each."""
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        path = screenshot(f"journey-{name}-{size}")
        page.screenshot(path=str(path.with_name(f"journey-{name}-{size}-screen.png")))
        if size == "phone":  # one row of header on a phone (issue #23 item 8)
            assert page.locator(".site-header").bounding_box()["height"] < 60
    page.set_viewport_size(DESKTOP)


def test_a_new_visitor_plans_reads_drills_at_their_level_and_keeps_it_all_at_sign_up(
    live_server, page, screenshot, queueing
):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size(DESKTOP)
    base = live_server.url

    # A plan to a date 14 days out, level Staff: Home shows Day 1 and Continue.
    page.goto(base + "/")
    both_sizes(page, screenshot, "home-new")
    page.fill("input[name=interview_date]", (timezone.now().date() + timedelta(days=14)).isoformat())
    page.check("input[name=level][value=staff]")
    page.click(".today button[type=submit]")
    expect(page.locator("#today-title")).to_contain_text("Day 1 of 14")
    expect(page.locator("a.continue")).to_be_visible()
    assert LearnerPlan.objects.get().time_zone  # the browser's zone came along
    both_sizes(page, screenshot, "home-day1")
    page.click("text=The whole plan, or change the date or level")
    expect(page.locator(".plan-day")).to_have_count(14)
    expect(page.locator(".plan-day").last).to_contain_text("mock interview")
    both_sizes(page, screenshot, "plan")
    page.goto(base + "/")

    # Read half a chapter, leave, come back: Continue lands on that heading.
    chapter = queueing.sections.in_order().get(slug="core-concepts")
    heading = chapter.toc[len(chapter.toc) // 2]["id"]
    page.goto(base + chapter.get_absolute_url())
    expect(page.locator("#reading-position[data-url]")).to_be_attached()
    page.locator(f"#{heading}").scroll_into_view_if_needed()
    page.evaluate(f"document.getElementById('{heading}').scrollIntoView({{block: 'start'}})")
    wait_for(lambda: ReadingPosition.objects.filter(heading=heading).exists(), 10, message="reading position saved")
    page.goto(base + "/")
    expect(page.locator("a.continue")).to_have_text("Continue reading")
    page.click("a.continue")
    page.wait_for_url(re.compile(re.escape(f"#{heading}") + "$"))
    expect(page.locator(f"#{heading}")).to_be_in_viewport()
    both_sizes(page, screenshot, "chapter-resumed")

    # The first 10 new drills are Staff or Senior.
    page.goto(base + "/drills/")
    levels = page.locator("ol.drill-list.new-drills .pill").all_inner_texts()
    assert len(levels) == 10
    assert set(levels) <= {"Staff", "Senior"}
    both_sizes(page, screenshot, "drills-staff-first")

    # Paste the "listens for" phrases: not credited, flagged, Again suggested; press 2 to rate Hard.
    first = page.locator("ol.drill-list.new-drills a").first
    first.click()
    question = Question.objects.get(slug=page.url.rstrip("/").rsplit("/", 1)[1])
    phrases = ", ".join(p for point in question.key_points for p in point["phrases"])
    expect(page.get_by_text("listens for")).to_have_count(0)
    page.fill("textarea[name=answer]", phrases)
    page.click("button[value=submit]")
    expect(page.locator(".coverage-score")).to_contain_text(f"0 of {len(question.key_points)}")
    expect(page.locator(".coverage-flags")).to_contain_text("list of terms")
    expect(page.locator("button.rate.suggested")).to_contain_text("Again")
    expect(page.get_by_text("listens for")).to_have_count(0)
    both_sizes(page, screenshot, "drill-gamed")
    page.locator("body").click(position={"x": 5, "y": 5})  # focus out of the answer box
    page.keyboard.press("2")
    expect(page.locator("#outcome-heading")).to_have_text("You rated this Hard", timeout=wait_ms(5000))
    assert Review.objects.get().rating == 2
    expect(page.locator(".listens-for").first).to_be_visible()  # shown only now
    both_sizes(page, screenshot, "drill-rated")

    # Sign up: the plan, the position and the rating are kept. (The screenshots' resizes may have moved the
    # position on: the tracker saves whatever heading the reader's window shows.)
    saved = ReadingPosition.objects.get().heading
    page.goto(base + "/accounts/signup/")
    page.fill("input[name=username]", "journey")
    page.fill("input[name=password1]", "a-long-Passphrase-42")
    page.fill("input[name=password2]", "a-long-Passphrase-42")
    page.click("main button[type=submit]")
    page.goto(base + "/")
    expect(page.locator("#today-title")).to_contain_text("Day 1 of 14")
    expect(page.locator("a.continue")).to_have_attribute("href", re.compile(re.escape(f"#{saved}") + "$"))
    assert LearnerPlan.objects.get().user.username == "journey"
    assert ReadingPosition.objects.get().user.username == "journey"
    assert Card.objects.get().user.username == "journey"
    assert Card.objects.get().reviews.get().rating == 2
    both_sizes(page, screenshot, "home-signed-up")
    assert errors == []
