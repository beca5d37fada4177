from datetime import UTC, datetime, timedelta

import pytest

from tests.drills.conftest import make_question
from topics.drills import scheduling
from topics.drills.models import Card

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_again_schedules_earlier_than_good_for_the_same_card():
    card = scheduling.new_card(NOW)
    after_again = scheduling.review(card, 1, NOW)
    after_good = scheduling.review(card, 3, NOW)
    assert after_again.due < after_good.due


def test_again_schedules_earlier_than_good_for_a_mature_card():
    card = scheduling.new_card(NOW)
    for days in (0, 1, 4, 15):
        card = scheduling.review(card, 3, NOW + timedelta(days=days))
    later = NOW + timedelta(days=40)
    assert scheduling.review(card, 1, later).due < scheduling.review(card, 3, later).due


@pytest.mark.django_db
def test_card_state_round_trips_through_the_database():
    question = make_question()
    fsrs_card = scheduling.review(scheduling.review(scheduling.new_card(NOW), 3, NOW), 3, NOW + timedelta(hours=1))
    card = Card(anon_id="s1", question=question)
    card.set_fsrs(fsrs_card)
    card.save()
    loaded = Card.objects.get(pk=card.pk).fsrs_card()
    assert loaded.to_dict() == fsrs_card.to_dict()
    assert loaded.due == fsrs_card.due
    assert loaded.stability == fsrs_card.stability
    assert Card.objects.get(pk=card.pk).due == fsrs_card.due


@pytest.mark.django_db
def test_card_queryset_for_learner_and_due():
    from prepsite.visitor import Visitor

    question = make_question()
    card = Card(anon_id="s1", question=question)
    card.set_fsrs(scheduling.new_card(NOW))
    card.save()
    mine, theirs = Visitor(anon_id="s1"), Visitor(anon_id="s2")
    assert list(Card.objects.for_visitor(mine).due(NOW)) == [card]
    assert not Card.objects.for_visitor(mine).due(NOW - timedelta(minutes=1)).exists()
    assert not Card.objects.for_visitor(theirs).exists()
    assert not Card.objects.for_visitor(None).exists()


def test_humanize_delta():
    assert scheduling.humanize_delta(timedelta(minutes=10)) == "10 minutes"
    assert scheduling.humanize_delta(timedelta(days=3, hours=2)) == "3 days"
    assert scheduling.humanize_delta(timedelta(seconds=5)) == "less than a minute"
