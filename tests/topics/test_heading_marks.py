"""Per-section "understood" marks inside a chapter (its ### headings), rolled up to "n of m sections"."""

import re

import pytest
from django.urls import reverse

from topics.loader import DEFAULT_CONTENT_DIR
from topics.models import HeadingUnderstood

pytestmark = pytest.mark.django_db

HX = {"headers": {"HX-Request": "true"}}
PASSWORD = "a-long-enough-passphrase-42"


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def chapter(queueing):
    return queueing.sections.get(slug="core-concepts")


def source_headings(section) -> int:
    """How many ### headings the chapter's Markdown has: counted from the file, not from what the loader stored."""
    path = next((DEFAULT_CONTENT_DIR / "queueing" / "sections").glob(f"*-{section.slug}.md"))
    return sum(1 for line in path.read_text().splitlines() if line.startswith("### "))


def personal(client, section) -> str:
    response = client.get(reverse("topics:section_personal", args=["queueing", section.slug]))
    assert response.status_code == 200
    return response.content.decode()


def mark(client, section, heading: str, understood: str = "1", **extra):
    url = reverse("topics:mark_heading", args=["queueing", section.slug])
    return client.post(url, {"heading": heading, "understood": understood}, **extra)


def test_a_chapter_counts_its_sections_and_none_are_understood_at_first(client, queueing):
    section = chapter(queueing)
    total = source_headings(section)
    assert total > 3
    assert f"0 of {total} sections of this chapter understood" in text(personal(client, section))


def test_marking_a_section_rolls_up_to_the_chapter_and_undo_takes_it_back(client, queueing):
    section = chapter(queueing)
    total = source_headings(section)
    first, second = section.parts[0]["id"], section.parts[1]["id"]
    response = mark(client, section, first)
    assert response.status_code == 302
    assert response["Location"] == f"{section.get_absolute_url()}#{first}"
    mark(client, section, second)
    mark(client, section, second)  # twice is still one mark
    html = personal(client, section)
    assert f"2 of {total} sections of this chapter understood" in text(html)
    assert re.search(rf'<li id="part-{first}">.*?✓ Understood.*?</li>', html, re.DOTALL)
    assert mark(client, section, first, "0").status_code == 302
    assert f"1 of {total} sections of this chapter understood" in text(personal(client, section))
    # The chapter's own mark is a separate decision: marking sections does not mark the chapter.
    assert f"0 of {queueing.sections.count()} chapters understood" in text(personal(client, section))


def test_htmx_mark_answers_with_the_list_and_the_count_out_of_band(client, queueing):
    section = chapter(queueing)
    response = mark(client, section, section.parts[0]["id"], **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<div id="parts" class="parts-marks" hx-swap-oob="true">' in html
    assert 'id="parts-rollup"' in html
    assert "<html" not in html
    assert f"1 of {len(section.parts)} sections" in text(html)


@pytest.mark.parametrize("heading", ["no-such-heading", ""])
def test_an_unknown_section_is_a_400(client, queueing, heading):
    section = chapter(queueing)
    assert mark(client, section, heading).status_code == 400
    assert not HeadingUnderstood.objects.exists()


def test_a_heading_of_another_chapter_is_a_400(client, queueing):
    section, other = chapter(queueing), queueing.sections.get(slug="scalability-and-reliability")
    foreign = next(part["id"] for part in other.parts if part["id"] not in {p["id"] for p in section.parts})
    assert mark(client, section, foreign).status_code == 400


def test_section_marks_move_to_the_account_at_sign_up(client, queueing):
    section = chapter(queueing)
    mark(client, section, section.parts[0]["id"])
    client.post(reverse("signup"), {"username": "cy", "password1": PASSWORD, "password2": PASSWORD})
    row = HeadingUnderstood.objects.get()
    assert row.user.username == "cy"
    assert row.anon_id == ""
    assert f"1 of {len(section.parts)} sections" in text(personal(client, section))
