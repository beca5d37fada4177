"""The staff-level design prompts: phased model answers that load, link, compute and reveal like the mock interview."""

import html
import re
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from topics.drills.matching import match_key_points
from topics.drills.models import PHASES
from topics.loader import content_load
from topics.markdown import html_to_text
from topics.models import Question, Section

pytestmark = pytest.mark.django_db

PHASE_TITLES = [phase["title"] for phase in PHASES]  # the mock interview's phases, in its order
DESIGN_SLUGS = {
    "design-distributed-message-queue",
    "design-job-scheduler",
    "design-webhook-delivery",
    "design-notification-fan-out",
    "design-media-pipeline",
    "design-payments-exactly-once",
}
MIN_PHASE_WORDS = 80
# The answer's top-level headings; any level, so the page may nest them under its own "Model answer" heading.
HEADING = re.compile(r"<h([1-6])\b[^>]*>(.*?)</h\1>", re.DOTALL)
# A computation with its result, e.g. "100,000 × 1 KB = 100 MB/s" or "60,000 × 0.005 = 300".
COMPUTED = re.compile(r"\d[\d,.]*[^\d\n=≈]{0,16}[×÷/]\s*\$?\d[^=≈\n]{0,60}[=≈]\s*~?\$?\d")
UNRESOLVED = re.compile(r'href="(?:lab|section|question):')
# An answer with every buzzword and none of the substance: no key point of a design prompt may tick.
GENERIC_ANSWER = (
    "I would put the events on a queue and add workers that process messages. Failures retry, and "
    "there is a subscription per consumer. The database stores the data and a cache makes it fast. "
    "We scale horizontally, monitor everything with metrics and alerts, and make it reliable and available."
)


@pytest.fixture
def designs(queueing):
    return list(queueing.questions.filter(kind=Question.Kind.DESIGN).order_by("slug"))


def phase_headings(question: Question) -> list[str]:
    """Titles of the rendered answer's top-level headings, in order."""
    found = HEADING.findall(question.answer_html)
    top = min((level for level, _ in found), default="")
    return [html.unescape(html_to_text(title)) for level, title in found if level == top]


def phases(question: Question) -> dict[str, str]:
    """Plain text under each top-level heading of the rendered model answer, by heading title."""
    top = min(level for level, _ in HEADING.findall(question.answer_html))
    parts = re.split(rf"<h{top}\b[^>]*>(.*?)</h{top}>", question.answer_html, flags=re.DOTALL)
    return {html.unescape(html_to_text(parts[i])): html_to_text(parts[i + 1]) for i in range(1, len(parts), 2)}


def test_the_real_content_loads_with_no_problems(db):
    stats = content_load()
    assert stats[0].questions == Question.objects.count()
    assert set(Question.objects.filter(kind="design").values_list("slug", flat=True)) >= DESIGN_SLUGS


def test_at_least_six_staff_level_design_prompts(designs):
    assert len(designs) >= 6
    assert {q.slug for q in designs} >= DESIGN_SLUGS
    assert all(q.level == Question.Level.STAFF for q in designs)


def test_each_answer_has_exactly_the_five_phase_headings_in_order(designs):
    for question in designs:
        assert phase_headings(question) == PHASE_TITLES, question.slug
        assert question.answer_md.count("\n## ") + question.answer_md.startswith("## ") == len(PHASE_TITLES)


def test_each_phase_is_substantial(designs):
    for question in designs:
        for title, text in phases(question).items():
            words = len(re.findall(r"\w+", text))
            assert words >= MIN_PHASE_WORDS, f"{question.slug}: {title!r} has {words} words"


def test_estimates_show_the_arithmetic(designs):
    for question in designs:
        estimates = phases(question)["Estimates"]
        computed = COMPUTED.findall(estimates)
        assert len(computed) >= 4, f"{question.slug}: only {computed}"
        assert "Little" in estimates, f"{question.slug}: no Little's law sizing"


def test_special_links_resolve_to_pages_and_headings_that_exist(client, designs):
    anchors = {entry["id"] for section in Section.objects.all() for entry in section.toc}
    drill_paths = {q.get_absolute_url() for q in Question.objects.all()}
    for question in designs:
        assert not UNRESOLVED.search(question.answer_html), question.slug
        hrefs = re.findall(r'<a class="(?:section|drill|lab)-link" href="([^"]+)"', question.answer_html)
        section_links = re.findall(r"\]\(section:[^)]+#[^)]+\)", question.answer_md)
        assert len(section_links) >= 2, f"{question.slug} links into too few sections"
        assert re.search(r"\]\(lab:", question.answer_md), f"{question.slug} has no Lab link"
        assert len(hrefs) >= len(section_links) + 1, question.slug
        for href in hrefs:
            url = urlsplit(html.unescape(href))
            if url.fragment:
                assert url.fragment in anchors, f"{question.slug}: #{url.fragment}"
            if url.path.startswith("/topics/") and "/drill/" in url.path:
                assert url.path in drill_paths, href
            else:
                assert client.get(url.path, {"preset": url.query.removeprefix("preset=")}).status_code == 200, href


def test_the_model_answer_earns_every_key_point(designs):
    for question in designs:
        result = match_key_points(question.answer_md, question.key_points)
        missed = [point.label for point in result.points if not point.matched]
        assert not missed, f"{question.slug} never says {missed}"


def test_a_buzzword_answer_earns_no_key_point(designs):
    for question in designs:
        result = match_key_points(GENERIC_ANSWER, question.key_points)
        assert result.matched_indexes == [], (question.slug, [result.points[i].label for i in result.matched_indexes])


def test_giving_up_on_a_design_prompt_reveals_the_phased_answer_and_curveballs(client, designs):
    question = next(q for q in designs if q.slug == "design-webhook-delivery")
    url = reverse("drills:question", args=[question.topic.slug, question.slug])
    before = client.get(url).content.decode()
    assert 'id="requirements"' not in before
    response = client.post(url, {"answer": "", "action": "give_up", "started_at": ""})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    for phase_id in ("requirements", "estimates", "high-level-design", "deep-dive", "failure-modes-wrap-up"):
        assert re.search(rf'<h[2-6] id="{phase_id}">', page), phase_id
    assert html.escape(question.followups[0], quote=True) in page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_design_prompt_reveal_reads_phase_by_phase_on_desktop_and_phone(live_server, page, screenshot, queueing):
    question = queueing.questions.get(slug="design-payments-exactly-once")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + question.get_absolute_url())
    expect(page.locator(".model-answer")).to_have_count(0)
    page.click("button[value=give_up]")

    headings = page.locator(".model-answer .prose").locator("h2, h3, h4, h5")
    expect(headings).to_have_text(PHASE_TITLES)
    expect(page.locator(".model-answer .prose table").first).to_be_visible()
    screenshot("design-prompt-reveal-desktop")

    page.set_viewport_size({"width": 390, "height": 844})
    # Wide tables scroll inside their own region; the page itself must not scroll sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.locator("#estimates").scroll_into_view_if_needed()
    screenshot("design-prompt-reveal-phone")
