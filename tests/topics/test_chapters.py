import itertools
import re
from collections import Counter
from html.parser import HTMLParser

import pytest
from django.core.management.base import CommandError
from django.urls import reverse

from tests.topics.conftest import load, section_file, write_content
from topics.models import SectionUnderstood

pytestmark = pytest.mark.django_db


class Ids(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.ids: Counter = Counter()
        self.forwards: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids[attrs["id"]] += 1
            if tag == "a" and "data-forward" in attrs:
                self.forwards[attrs["id"]] = attrs["href"]


def get(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_each_chapter_has_its_page_with_its_body_and_titled_prev_next_links(client, queueing):
    sections = list(queueing.sections.in_order())
    for number, section in enumerate(sections):
        html = get(client, f"/topics/queueing/{section.slug}/")
        assert f"<h1>{section.title}</h1>" in html
        assert section.body_html[:200] in html
        assert f"Chapter {number + 1} of {len(sections)}" in html
        nav = re.search(r'<nav class="chapter-nav".*?</nav>', html, flags=re.DOTALL)[0]
        if number:
            before = sections[number - 1]
            assert f'href="{before.get_absolute_url()}" rel="prev"' in nav
            assert before.title in nav
        else:
            assert 'rel="prev"' not in nav
        if number + 1 < len(sections):
            after = sections[number + 1]
            assert f'href="{after.get_absolute_url()}" rel="next"' in nav
            assert after.title in nav
        else:
            assert 'rel="next"' not in nav


def test_contents_marks_the_current_chapter_and_only_it(client, queueing):
    section = queueing.sections.in_order()[4]
    html = get(client, section.get_absolute_url())
    contents = re.search(r'<nav id="contents".*?</nav>', html, flags=re.DOTALL)[0]
    assert contents.count('aria-current="page"') == 1
    assert f'<a href="{section.get_absolute_url()}" aria-current="page">{section.title}</a>' in contents
    assert contents.count("<li") >= queueing.sections.count()


def test_contents_shows_which_chapters_this_visitor_marked(client, queueing):
    first, fifth = queueing.sections.in_order()[0], queueing.sections.in_order()[4]
    client.post(reverse("topics:mark_understood", args=["queueing", first.slug]), {"understood": "1"})
    html = get(client, reverse("topics:section_personal", args=["queueing", fifth.slug]))
    assert f'id="toc-check-{first.slug}" class="toc-check" hx-swap-oob="true"><span title="understood">✓' in html
    assert f'id="toc-check-{fifth.slug}"' not in html  # unmarked: the shared page's empty tick stands
    assert f'<form id="understood-{fifth.slug}"' in html
    assert f"1</strong> of {queueing.sections.count()} chapters understood" in html
    # Someone else sees none of it.
    other = get(
        pytest.importorskip("django.test").Client(), reverse("topics:section_personal", args=["queueing", fifth.slug])
    )
    assert "✓" not in other


def test_chapter_page_is_shared_and_personal_parts_are_not(client, queueing):
    section = queueing.sections.in_order()[1]
    response = client.get(section.get_absolute_url())
    assert response["Cache-Control"] == "public, max-age=60"
    assert "csrfmiddlewaretoken" not in response.content.decode()
    personal = client.get(reverse("topics:section_personal", args=["queueing", section.slug]))
    assert personal["Cache-Control"].startswith("max-age=0")


def test_unknown_chapters_are_404_and_drill_routes_still_win(client, queueing):
    assert client.get("/topics/queueing/no-such-chapter/").status_code == 404
    assert client.get("/topics/queueing/no-such-chapter/personal/").status_code == 404
    assert client.get("/topics/nope/overview/").status_code == 404
    assert client.get("/topics/nope/personal/").status_code == 404
    assert client.get("/topics/queueing/drill/").status_code == 200
    assert client.get("/topics/queueing/drill-status/").status_code == 200
    assert client.get("/topics/queueing/checklist/").status_code == 200


def test_overview_keeps_every_old_anchor_as_a_link_to_its_chapter(client, queueing):
    ids = Ids(get(client, "/topics/queueing/"))
    duplicated = [element_id for element_id, count in ids.ids.items() if count > 1]
    assert duplicated == []
    for section in queueing.sections.all():
        assert ids.forwards[section.slug] == section.get_absolute_url()
        chapter = Ids(get(client, section.get_absolute_url()))
        for entry in section.toc:
            assert ids.forwards[entry["id"]] == f"{section.get_absolute_url()}#{entry['id']}"
            assert chapter.ids[entry["id"]] == 1


def test_section_links_in_content_point_to_chapter_pages(queueing):
    bodies = " ".join(queueing.sections.values_list("body_html", flat=True))
    links = re.findall(r'class="section-link" href="([^"]+)"|href="([^"]+)" class="section-link"', bodies)
    hrefs = [a or b for a, b in links] or re.findall(r'href="(/topics/queueing/[\w-]+/(?:#[\w-]+)?)"', bodies)
    assert hrefs
    assert not [href for href in hrefs if href.startswith("/topics/queueing/#")]


def test_marking_without_javascript_posts_and_returns_to_the_chapter(client, queueing):
    section = queueing.sections.in_order()[3]
    response = client.post(reverse("topics:mark_understood", args=["queueing", section.slug]), {"understood": "1"})
    assert response.status_code == 302
    assert response["Location"] == f"{section.get_absolute_url()}#understood-{section.slug}"
    assert SectionUnderstood.objects.filter(section=section).count() == 1
    html = get(client, section.get_absolute_url())
    assert f'<div id="understood-{section.slug}" class="understood-form"><noscript>' in html


def test_loader_rejects_a_section_slug_that_is_a_route_or_a_page_id(tmp_path):
    for slug in ("drill", "contents"):
        root = write_content(tmp_path / slug, sections={"03-x.md": section_file(slug, "X", 3, "Body.")})
        with pytest.raises(CommandError, match=slug):
            load(root)


def test_every_chapter_pages_heading_outline_skips_no_level(client, queueing):
    """The Markdown's ### are the chapter's own sections: h2 under the page's h1, never h3 after h1."""
    for section in queueing.sections.in_order():
        html = get(client, f"/topics/queueing/{section.slug}/")
        main = html[html.index("<main") : html.index("</main>")]
        levels = [int(level) for level in re.findall(r"<h([1-6])\b", main)]
        assert levels[0] == 1, section.slug
        assert levels.count(2) >= 2, section.slug  # its sections, then "Practise this chapter"
        jumps = [(a, b) for a, b in itertools.pairwise(levels) if b > a + 1]
        assert not jumps, f"{section.slug}: heading levels jump {jumps}"
