import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from tests.drills.conftest import make_question
from topics.drills import scheduling, services
from topics.drills.learner import Learner
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
    learner = Learner(session_key="s1")
    q1, q2 = make_question("q1"), make_question("q2")
    card = Card(session_key="s1", question=q1)
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


def test_progress_page_works_for_a_brand_new_visitor(client):
    response = client.get(reverse("drills:progress"))
    assert response.status_code == 200
    assert "0 reviews in total" in response.content.decode()
