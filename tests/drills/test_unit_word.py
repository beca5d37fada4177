"""One word for the unit everywhere: Study and Drills both call a topic's parts chapters (issue #23)."""

import re

import pytest

pytestmark = pytest.mark.django_db


def visible(client, url: str) -> str:
    response = client.get(url, follow=True)
    assert response.status_code == 200, url
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("/topics/queueing/personal/", "chapters understood"),
        ("/drills/", "Readiness per chapter"),
        ("/drills/progress/", "By chapter"),
        ("/topics/queueing/drill/", "Question Level Chapter Status"),
    ],
)
def test_study_and_drills_call_the_unit_a_chapter(client, queueing, url, says):
    text = visible(client, url)
    assert says in text
    # "Core concepts" is a chapter's title; the unit itself is never a concept or a section.
    unit = re.sub(r"Core concepts", "", text)
    assert not re.search(r"\b(key concepts?|per concept|sections understood|By concept)\b", unit, re.IGNORECASE)
    assert " Concept " not in f" {unit} ", url
