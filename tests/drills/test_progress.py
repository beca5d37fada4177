import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from prepsite.visitor import Visitor
from tests.drills.conftest import make_question
from topics.drills import scheduling, services
from topics.drills.models import Card, Review

pytestmark = pytest.mark.django_db


def test_streak_counts_consecutive_days_ending_today_or_yesterday():
    today = date(2026, 3, 10)
    assert services.streak(set(), today) == 0
    assert services.streak({today, today - timedelta(days=1), today - timedelta(days=3)}, today) == 2
    assert services.streak({today - timedelta(days=1), today - timedelta(days=2)}, today) == 2
    assert services.streak({today - timedelta(days=2)}, today) == 0


def test_progress_groups_by_section_with_readiness_and_mastery():
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    learner = Visitor(anon_id="s1")
    q1, q2 = make_question("q1"), make_question("q2")
    card = Card(anon_id="s1", question=q1)
    fsrs_card = scheduling.new_card(now - timedelta(days=60))
    for days_ago in (60, 59, 50, 30):
        fsrs_card = scheduling.review(fsrs_card, 3, now - timedelta(days=days_ago))
    card.set_fsrs(fsrs_card)
    card.save()
    for days_ago in (0, 1, 2):
        Review.objects.create(card=card, rating=3, reviewed_at=now - timedelta(days=days_ago, hours=1))
    progress = services.progress_for(learner=learner, now=now)
    [concept] = progress.concepts
    assert (concept.title, concept.questions, concept.seen) == ("Scalability and reliability", 2, 1)
    assert concept.mastered == int(fsrs_card.stability >= 21)
    expected = round(100 * scheduling.retrievability(fsrs_card, now) / 2)
    assert concept.readiness == expected
    assert 0 < expected <= 50
    assert progress.streak == 3
    assert progress.per_day[-1] == (date(2026, 3, 10), 1)
    assert len(progress.per_day) == 30
    assert q2.pk


def test_progress_page_renders_accessible_chart_and_table(client, question):
    attempt_url = client.post(question.get_absolute_url(), {"answer": "bulkhead", "action": "submit"})["Location"]
    client.post(attempt_url + "rate/", {"rating": "3"})
    html = client.get(reverse("drills:progress")).content.decode()
    assert '<svg role="img"' in html
    assert '<title id="chart-title">Reviews per day, last 30 days</title>' in html
    assert re.search(r'<text [^>]*class="bar-value">1</text>', html)
    assert "Scalability and reliability" in html
    assert "mastered when its FSRS stability is at least 21 days" in html
    assert "style=" not in html
    assert "onclick" not in html


def test_progress_page_shows_empty_state_instead_of_empty_chart_for_a_new_visitor(client):
    response = client.get(reverse("drills:progress"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "No reviews yet — drill a question to start your streak." in html
    assert '<svg role="img"' not in html


def test_readiness_is_a_dash_right_after_rating_again_not_100_percent(client, question):
    attempt_url = client.post(question.get_absolute_url(), {"answer": "", "action": "give_up"})["Location"]
    client.post(attempt_url + "rate/", {"rating": "1"})
    html = client.get(reverse("drills:progress")).content.decode()
    assert "100%</div>" not in html
    assert 'value="100"' not in html
    assert '<div class="n">—</div><div class="k">readiness' in html
    assert "reviewed under a day ago" in html
    assert "Questions reviewed in the last 24 hours are left out" in html


def test_readiness_leaves_out_cards_reviewed_less_than_a_day_ago():
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    learner = Visitor(anon_id="s1")
    fresh_q, old_q = make_question("fresh"), make_question("old")
    make_question("unseen")
    old = scheduling.review(scheduling.new_card(now - timedelta(days=10)), 3, now - timedelta(days=10))
    fresh = scheduling.review(scheduling.new_card(now - timedelta(hours=2)), 1, now - timedelta(hours=2))
    for question, fsrs_card in ((old_q, old), (fresh_q, fresh)):
        card = Card(anon_id="s1", question=question)
        card.set_fsrs(fsrs_card)
        card.save()
    [concept] = services.progress_for(learner=learner, now=now).concepts
    assert (concept.seen, concept.recent) == (2, 1)
    # the fresh card is left out: old card's recall over old + unseen
    assert concept.readiness == round(100 * scheduling.retrievability(old, now) / 2)

    Card.objects.filter(question=old_q).delete()
    [concept] = services.progress_for(learner=learner, now=now).concepts
    assert concept.readiness is None
    later = services.progress_for(learner=learner, now=now + timedelta(days=1)).concepts[0]
    assert later.readiness is not None


def test_every_chapter_appears_links_to_its_questions_and_a_14_day_forecast_counts_due_reviews(client, queueing):
    """Issue #23: chapters without drills do not silently drop out; rows open that chapter's questions."""
    from topics.models import Section

    question = queueing.questions.get(slug="poison-messages")
    attempt = client.post(question.get_absolute_url(), {"answer": "x", "action": "submit"})
    client.post(attempt["Location"] + "rate/", {"rating": "3"})
    html = client.get("/drills/progress/").content.decode()
    for section in Section.objects.all():
        assert section.title in html
    assert f'href="/topics/queueing/drill/?chapter={question.section.slug}"' in html
    assert f'href="/drills/?chapter={question.section.slug}"' in html
    session = client.get(f"/drills/?chapter={question.section.slug}").content.decode()
    assert f"Drills: {question.section.title}" in session
    listed = re.findall(r'<li><a href="/topics/queueing/drill/([^/]+)/">', session)
    assert listed
    assert set(listed) <= set(question.section.questions.values_list("slug", flat=True))
    assert client.get("/drills/?chapter=no-such-chapter").status_code == 400
    assert "No drills for this chapter yet" in html or all(s.questions.exists() for s in Section.objects.all())
    data = services.progress_for(learner=Visitor(anon_id=client.session["visitor"]))
    assert len(data.forecast) == 14
    assert sum(count for _, count in data.forecast) == 1
