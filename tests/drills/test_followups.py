"""Follow-ups that train the push (issue #24): each carries a model answer, chains go up to three levels deep, and
every rubric ends with what a staff answer adds. The format is checked by the loader, the content by these tests."""

import re
from pathlib import Path

import pytest
import yaml
from django.core.management.base import CommandError

from tests.topics.conftest import load, question_file, write_content
from topics.models import Question

QUESTIONS = Path(__file__).resolve().parents[2] / "topics" / "content" / "queueing" / "questions"

CHAINED = """followups:
  - ask: "Why a lease?"
    answer: "Because a crashed consumer never acks; see [basics](section:basics)."
    then:
      - ask: "How long should it be?"
        answer: "Longer than p99 of one attempt plus a margin."
        then:
          - ask: "And if a job runs longer?"
            answer: "Heartbeat: extend the lease every third of it."
staff: "Names the **detection time** the lease implies."
"""


def chained_question(followups: str = CHAINED) -> str:
    return question_file("why-queues", "Why?", "basics", "Because bursts.", preset="spike").replace(
        'followups:\n  - "And then?"\n', followups
    )


def meta(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8").split("---", 2)[1])


def depth(items: list) -> int:
    return max((1 + depth(item.get("then") or []) for item in items if isinstance(item, dict)), default=0)


def walk(items: list):
    for item in items:
        yield item
        if isinstance(item, dict):
            yield from walk(item.get("then") or [])


@pytest.mark.django_db
def test_a_chained_followup_loads_with_rendered_answers_three_levels_deep(tmp_path):
    load(write_content(tmp_path / "c", questions={"why-queues.md": chained_question()}))
    question = Question.objects.get(slug="why-queues")
    assert question.followups == ["Why a lease?"]  # the first pushes stay plain text for the mock interview
    first = question.followup_tree[0]
    assert 'href="/topics/demo/basics/"' in first["answer_html"]
    third = first["then"][0]["then"][0]
    assert third["ask"] == "And if a job runs longer?"
    assert "every third" in third["answer_html"]
    assert "<strong>detection time</strong>" in question.staff_html


@pytest.mark.django_db
def test_a_fourth_level_or_a_malformed_followup_is_a_content_error(tmp_path):
    too_deep = CHAINED.replace(
        '            answer: "Heartbeat: extend the lease every third of it."\n',
        '            answer: "Heartbeat."\n            then:\n              - ask: "Deeper?"\n                answer: "No."\n',
    )
    with pytest.raises(CommandError, match="followups chain at most 3 levels deep"):
        load(write_content(tmp_path / "a", questions={"why-queues.md": chained_question(too_deep)}))
    malformed = 'followups:\n  - ask: "Why?"\n    answr: "typo"\n'
    with pytest.raises(CommandError, match=r"\{ask, answer, then\?\}"):
        load(write_content(tmp_path / "b", questions={"why-queues.md": chained_question(malformed)}))


@pytest.mark.parametrize("path", sorted(QUESTIONS.glob("*.md")), ids=lambda p: p.stem)
def test_every_followup_has_a_model_answer_and_every_rubric_a_staff_row(path):
    data = meta(path)
    for item in walk(data["followups"]):
        assert isinstance(item, dict), f"{path.name}: follow-up without a model answer: {item!r}"
        assert len(item["answer"].split()) >= 15, f"{path.name}: answer to {item['ask']!r} is too thin"
    assert len(str(data.get("staff", "")).split()) >= 20, f"{path.name}: no 'what a staff answer adds' row"


def test_at_least_eight_drills_push_three_levels_deep():
    deep = [path.stem for path in sorted(QUESTIONS.glob("*.md")) if depth(meta(path)["followups"]) >= 3]
    assert len(deep) >= 8, deep


def test_follow_up_answers_link_only_to_things_that_exist(queueing):
    """The loader resolves section:/question:/lab: links inside answers; nothing unresolved reaches the page."""
    for question in queueing.questions.all():
        for item in walk(question.followup_tree):
            assert not re.search(r'href="(section|question|lab):', item["answer_html"]), question.slug
