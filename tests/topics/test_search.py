import re

import pytest
from django.urls import reverse

from topics.search import MAX_QUERY, clean_query, highlight, query_terms, search, stem

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


def test_finds_the_paragraph_holding_a_word_and_links_to_it_with_the_words_to_highlight(searchable):
    hits = search("protocol")
    assert [(hit.kind, hit.title) for hit in hits] == [("section", "Basics")]
    assert "<mark>protocol</mark>" in hits[0].snippet
    assert hits[0].url == "/topics/demo/basics/?highlight=protocol#top--1"


def test_a_word_in_a_chapter_title_or_a_body_finds_both_chapters_once_each(searchable):
    hits = search("zanzibar")
    assert sorted(hit.context for hit in hits) == ["Demo topic › Basics", "Demo topic › Zanzibar routing"]


def test_sub_heading_match_lands_on_the_paragraph_under_it(searchable):
    hit = search("sticky partitions")[0]
    assert hit.title == "Sticky partitions"
    assert hit.url == "/topics/demo/routing/#sticky-partitions--1"  # the words are in the heading only
    assert hit.context == "Demo topic › Zanzibar routing"


def test_question_prompt_and_answer_are_searched(searchable):
    hit = search("queue bursts")[0]
    assert hit.kind == "question"
    assert hit.url == "/topics/demo/drill/why-queues/"


def test_plural_query_finds_singular_words(searchable):
    assert search("budgets")[0].title == "Retry budgets"
    assert search("retry")[0].title == "Retry budgets"  # the body says "retries"


@pytest.mark.parametrize(
    ("word", "same"),
    [("retries", "retry"), ("retried", "retry"), ("queues", "queue"), ("queueing", "queued"), ("caching", "cache"),
     ("shedding", "shed"), ("capped", "caps"), ("bounded", "bound")],
)  # fmt: skip
def test_stemmer_folds_the_forms_a_reader_types(word, same):
    assert stem(word) == stem(same)


def test_stemmer_keeps_different_words_apart():
    assert stem("concurrency") != stem("concurrent")
    assert stem("bus") != stem("bu")


def test_words_side_by_side_rank_above_the_same_words_apart(tmp_path):
    sections = {
        "03-near.md": section_file("near", "Near", 3, "Filler words here. We use a poison pill queue there."),
        "04-far.md": section_file("far", "Far", 4, "A poison arrives. Many other words sit between. Then pill."),
    }
    load(write_content(tmp_path / "content", sections=sections))
    assert [hit.context for hit in search("poison pill")][:2] == ["Demo topic › Near", "Demo topic › Far"]


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


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "Type a word or two"),
        ("x" * 10_000, "No results for"),
        ("routing\x00 zanzibar", "Zanzibar"),
        ("!!! ??? ... --- ***", "Try searching for whole words"),
        ("a", "Try searching for whole words"),
    ],
)
def test_bad_queries_get_a_clear_page_not_an_error(client, searchable, query, expected):
    response = client.get(reverse("topics:search"), {"q": query})
    assert response.status_code == 200
    html = response.content.decode()
    assert expected in html
    assert "\x00" not in html


def test_query_terms_drop_control_characters_and_stopwords():
    assert clean_query("dead\x00letter\x07  queue") == "deadletter queue"
    assert query_terms("the retries with the backoff and jitter") == ["retry", "backoff", "jitter"]


def test_highlight_escapes_before_marking():
    pattern = re.compile(r"\bscript", re.IGNORECASE)
    assert highlight("<script> & script", [pattern]) == "&lt;<mark>script</mark>&gt; &amp; <mark>script</mark>"


def test_real_content_search_for_retry_ranks_a_heading_first(client, queueing):
    hits = search("retry")
    assert hits
    assert "retr" in hits[0].title.lower()
    assert "<mark>" in get(client, "retry")


# Terms of the brief, the chapter that teaches each, and a sentence of the teaching passage.
TEACHING_PASSAGES = [
    ("bounded concurrency", "scalability-and-reliability", "A semaphore of, say, 20 in-flight calls"),
    ("retries with backoff and jitter", "scalability-and-reliability", "Backoff alone still synchronises clients"),
    ("circuit breaker", "scalability-and-reliability", "stop calling it for 30 s"),
    ("retry budget", "scalability-and-reliability", "A retry budget caps retries as a share of total traffic"),
    ("load shedding", "scalability-and-reliability", "Shed by priority"),
    ("visibility timeout", "core-concepts", "SQS hides a received message for the visibility timeout"),
    ("backpressure", "core-concepts", "A queue smooths bursts only if the burst ends"),
    ("poison message", "core-concepts", "Poison messages fail every time"),
    ("exactly once", "core-concepts", "exactly-once"),
    ("transactional outbox", "data-and-request-flow", "The transactional outbox removes the dual write"),
    ("head-of-line blocking", "internal-architecture", "everything behind it in the same partition"),
    ("rollback", "senior-level-insights", "A rollback plan is a claim that you can return to a known good state"),
]


@pytest.mark.parametrize(("term", "chapter", "sentence"), TEACHING_PASSAGES)
def test_a_term_of_the_brief_finds_the_passage_that_teaches_it(queueing, term, chapter, sentence):
    top = search(term)[0]
    assert top.kind == "section"
    assert top.url.startswith(f"/topics/queueing/{chapter}/?highlight="), top.url
    assert sentence in top.text
    block = next(b for b in queueing.sections.get(slug=chapter).blocks if b["id"] == top.block_id)
    assert sentence in block["text"]


def test_bounded_concurrency_no_longer_ranks_bounded_queues_first(queueing):
    titles = [hit.title for hit in search("bounded concurrency")[:1]]
    assert "Bounded queues and load shedding" not in titles


def test_a_result_links_to_its_paragraph_which_the_chapter_page_carries(client, queueing):
    top = search("bounded concurrency")[0]
    path, _, block_id = top.url.partition("#")
    html = page_html(client, path)
    assert f'id="{block_id}"' in html
    assert "highlight=concurrency+limits" in top.url


def test_drill_questions_are_still_searchable(queueing):
    question = queueing.questions.get(slug="poison-messages")
    hits = search(question.prompt)
    assert any(hit.kind == "question" and hit.url == question.get_absolute_url() for hit in hits[:3])


def page_html(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()
