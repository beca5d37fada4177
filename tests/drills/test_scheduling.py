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
    assert list(Card.objects.owned_by(mine).due(NOW)) == [card]
    assert not Card.objects.owned_by(mine).due(NOW - timedelta(minutes=1)).exists()
    assert not Card.objects.owned_by(theirs).exists()
    assert not Card.objects.owned_by(None).exists()


def test_humanize_delta():
    assert scheduling.humanize_delta(timedelta(minutes=10)) == "10 minutes"
    assert scheduling.humanize_delta(timedelta(days=3, hours=2)) == "3 days"
    assert scheduling.humanize_delta(timedelta(seconds=5)) == "less than a minute"


def test_short_interval_and_words_say_the_same_thing():
    cases = [
        (timedelta(seconds=30), "<1m", "less than a minute"),
        (timedelta(minutes=1), "1m", "1 minute"),
        (timedelta(minutes=5, seconds=30), "6m", "6 minutes"),
        (timedelta(minutes=10), "10m", "10 minutes"),
        (timedelta(hours=5), "5h", "5 hours"),
        (timedelta(days=1), "1d", "1 day"),
        (timedelta(days=4), "4d", "4 days"),
        (timedelta(days=91), "3mo", "3 months"),
        (timedelta(days=365), "1y", "1 year"),
        (timedelta(days=550), "1.5y", "1.5 years"),
    ]
    for delta, short, words in cases:
        assert (scheduling.short_interval(delta), scheduling.interval_words(delta)) == (short, words), delta


def history_card(now: datetime) -> scheduling.FsrsCard:
    """A card reviewed Good four times over a month, now a week overdue: its intervals are in days."""
    card = scheduling.new_card(now - timedelta(days=60))
    for days_ago in (60, 59, 55, 40):
        card = scheduling.review(card, 3, now - timedelta(days=days_ago))
    return card


def test_preview_of_a_new_card_gives_each_ratings_due_date():
    choices = scheduling.preview(None, NOW, seed="attempt-1")
    assert [c.label for c in choices] == ["Again", "Hard", "Good", "Easy"]
    for choice in choices:
        assert choice.due == scheduling.review(scheduling.new_card(NOW), choice.rating, NOW, seed="attempt-1").due
    # fsrs' default learning steps: Again 1 min, Hard halfway to 10 min, Good 10 min; Easy graduates to days.
    assert [c.short for c in choices[:3]] == ["1m", "6m", "10m"]
    assert choices[3].short.endswith("d")
    assert choices[0].due < choices[1].due < choices[2].due < choices[3].due


def test_preview_of_a_card_with_history_matches_reviewing_it():
    card = history_card(NOW)
    choices = scheduling.preview(card, NOW, seed="attempt-2")
    for choice in choices:
        assert choice.due == scheduling.review(card, choice.rating, NOW, seed="attempt-2").due
    assert choices[0].short == "10m"  # Again: relearning
    assert all(c.short.endswith(("d", "mo")) for c in choices[1:])
    assert choices[1].due < choices[2].due < choices[3].due


def test_interval_fuzz_is_repeatable_per_seed_and_varies_between_seeds():
    card = history_card(NOW)
    dues = {scheduling.review(card, 3, NOW, seed=f"attempt-{n}").due for n in range(30)}
    assert len(dues) > 1, "fuzz should spread reviews over a few days"
    assert scheduling.review(card, 3, NOW, seed="x").due == scheduling.review(card, 3, NOW, seed="x").due
    unfuzzed = scheduling.SCHEDULER.review_card(card, scheduling.Rating(3), review_datetime=NOW)[0].due
    assert all(abs((due - unfuzzed).days) <= max(3, 0.1 * (unfuzzed - NOW).days) for due in dues)
