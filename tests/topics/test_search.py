import re

import pytest
from django.urls import reverse

from topics.search import MAX_QUERY, highlight, search

from .conftest import load, section_file, write_content

pytestmark = pytest.mark.django_db


@pytest.fixture
def searchable(tmp_path):
    """Demo content where one word is only in a body and another is also a heading."""
    sections = {
        "03-routing.md": section_file(
            "routing",
            "Zanzibar routing",
            3,
            "How messages find their consumer. Compare a < b & c > d when routing.\n\n### Sticky partitions\n\nKeys.",
        ),
    }
    load(write_content(tmp_path / "content", sections=sections))


def get(client, q: str) -> str:
    response = client.get(reverse("topics:search"), {"q": q})
    assert response.status_code == 200
    return response.content.decode()


def test_empty_query_shows_a_friendly_prompt(client, searchable):
    html = get(client, "")
    assert "Type a word or two" in html
    assert "No results" not in html


def test_finds_a_section_by_a_word_only_in_its_body(searchable):
    hits = search("protocol")
    assert [(hit.kind, hit.title) for hit in hits] == [("section", "Basics")]
    assert "<mark>protocol</mark>" in hits[0].snippet
    assert hits[0].url == "/topics/demo/#basics"


def test_heading_match_ranks_above_body_match(searchable):
    titles = [hit.title for hit in search("zanzibar")]
    assert titles == ["Zanzibar routing", "Basics"]


def test_sub_heading_match_links_to_its_anchor(searchable):
    hit = search("sticky partitions")[0]
    assert hit.title == "Sticky partitions"
    assert hit.url == "/topics/demo/#sticky-partitions"
    assert hit.context == "Demo topic › Zanzibar routing"


def test_question_prompt_and_answer_are_searched(searchable):
    hit = search("queue bursts")[0]
    assert hit.kind == "question"
    assert hit.url == "/topics/demo/drill/why-queues/"


def test_plural_query_finds_singular_words(searchable):
    assert search("budgets")[0].title == "Retry budgets"


def test_results_page_highlights_matches_and_escapes_content(client, searchable):
    html = get(client, "routing")
    assert "<mark>routing</mark>" in html
    assert "a &lt; b &amp; c &gt; d" in html


def test_query_is_echoed_escaped(client, searchable):
    html = get(client, "<script>alert('x')</script>")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_nonsense_query_says_no_results_and_suggests_topics(client, searchable):
    html = get(client, "qwxzvbnm")
    assert "No results for “qwxzvbnm”" in html
    assert 'href="/topics/demo/"' in html


def test_query_is_bounded_to_200_characters(client, searchable):
    html = get(client, "routing " + "x" * 1000)
    echoed = re.search(r'name="q" value="([^"]*)"', html)[1]
    assert len(echoed) <= MAX_QUERY


def test_highlight_escapes_before_marking():
    pattern = re.compile(r"\bscript", re.IGNORECASE)
    assert highlight("<script> & script", [pattern]) == "&lt;<mark>script</mark>&gt; &amp; <mark>script</mark>"


def test_real_content_search_for_retry_ranks_a_heading_first(client, queueing):
    hits = search("retry")
    assert hits
    assert "retr" in hits[0].title.lower()
    assert "<mark>" in get(client, "retry")
