"""The all-questions page: linked from Drills, filtered by level, chapter and status; bad filters are a 400."""

import re

import pytest

pytestmark = pytest.mark.django_db


def prompts(html: str) -> list[str]:
    return re.findall(r'<td><a href="/topics/queueing/drill/([^/]+)/">', html)


def test_drills_home_links_the_all_questions_page(client, queueing):
    assert 'href="/topics/queueing/drill/"' in client.get("/drills/").content.decode()


def test_level_and_chapter_filters_narrow_the_list(client, queueing):
    everything = prompts(client.get("/topics/queueing/drill/").content.decode())
    staff = prompts(client.get("/topics/queueing/drill/?level=staff").content.decode())
    assert 0 < len(staff) < len(everything)
    assert set(staff) == set(queueing.questions.filter(level="staff").values_list("slug", flat=True))
    chapter = queueing.questions.first().section
    in_chapter = prompts(client.get(f"/topics/queueing/drill/?chapter={chapter.slug}").content.decode())
    assert set(in_chapter) == set(chapter.questions.values_list("slug", flat=True))


def test_a_status_filter_shows_only_this_visitors_due_questions(client, queueing):
    question = queueing.questions.get(slug="poison-messages")
    attempt = client.post(question.get_absolute_url(), {"answer": "x", "action": "submit"})
    client.post(attempt["Location"] + "rate/", {"rating": "1"})
    later = prompts(client.get("/topics/queueing/drill/?status=later").content.decode())
    assert later == ["poison-messages"]
    assert "poison-messages" not in prompts(client.get("/topics/queueing/drill/?status=new").content.decode())


@pytest.mark.parametrize("query", ["level=principal", "chapter=no-such-chapter", "status=lost"])
def test_an_unknown_filter_is_a_400_that_says_so(client, queueing, query):
    response = client.get(f"/topics/queueing/drill/?{query}")
    assert response.status_code == 400
    assert "That filter is not one this page knows" in response.content.decode()
