"""The loaded question bank is fit for drilling: enough questions, well-formed rubrics, no boilerplate."""

import itertools
import re

import pytest

pytestmark = pytest.mark.django_db

BRIEF_PROMPTS = [
    "How does this design fail under traffic spikes?",
    "Which dependency is the primary bottleneck and why?",
    "What is your mitigation strategy for partial outages?",
]
RUN = 8


def normalised_words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def test_at_least_thirty_questions_and_the_brief_questions_are_loaded(content):
    assert content.count() >= 30
    prompts = set(content.values_list("prompt", flat=True))
    for prompt in BRIEF_PROMPTS:
        assert prompt in prompts


def test_each_question_has_four_to_eight_key_points_and_one_to_three_followups(content):
    for question in content:
        assert 4 <= len(question.key_points) <= 8, question.slug
        assert 1 <= len(question.followups) <= 3, question.slug
        for point in question.key_points:
            assert point["label"], question.slug
            assert point["phrases"], question.slug


def test_no_two_model_answers_share_a_long_passage(content):
    runs: dict[tuple, str] = {}
    shared = []
    for question in content:
        words = normalised_words(question.answer_md)
        for start in range(len(words) - RUN + 1):
            run = tuple(words[start : start + RUN])
            owner = runs.setdefault(run, question.slug)
            if owner != question.slug:
                shared.append((owner, question.slug, " ".join(run)))
    pairs = {(a, b): run for a, b, run in shared}
    assert not pairs, (
        f"{len(pairs)} answer pairs share {RUN}-word runs, e.g. {list(itertools.islice(pairs.items(), 5))}"
    )


def test_every_question_page_renders_with_the_answer_hidden(client, content):
    for question in content:
        html = client.get(question.get_absolute_url()).content.decode()
        assert question.answer_html[:200] not in html, question.slug
