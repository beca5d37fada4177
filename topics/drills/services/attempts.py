"""Attempts: submit an answer, rate recall, preview what each rating schedules."""

from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from prepsite.visitor import Visitor
from topics.drills import scheduling
from topics.drills.grading import Assessment, assess
from topics.drills.models import Attempt, Card, Review
from topics.models import Question

MAX_DURATION_MS = 6 * 60 * 60 * 1000


class AlreadyRated(Exception):
    """The attempt was rated before: a replayed or double-clicked rating."""


def new_per_day() -> int:
    return max(0, int(getattr(settings, "DRILLS_NEW_PER_DAY", 10)))


def start_of_today(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def attempt_submit(
    *, learner: Visitor, question: Question, answer: str, gave_up: bool, started_at_ms: int | None
) -> Attempt:
    now = timezone.now()
    duration = None
    if started_at_ms is not None:
        duration = int(now.timestamp() * 1000) - started_at_ms
        duration = duration if 0 <= duration <= MAX_DURATION_MS else None
    matched = attempt_assessment(answer, question, duration).credited if answer else []
    return Attempt.objects.create(
        **learner.owner(),
        question=question,
        answer=answer,
        gave_up=gave_up,
        duration_ms=duration,
        matched=matched,
        submitted_at=now,
    )


def attempt_assessment(answer: str, question: Question, duration_ms: int | None) -> Assessment:
    """What the rubric credits: the prompt and the model answer count as shown, so copying them earns nothing."""
    return assess(answer, question.key_points, shown=[question.prompt, question.answer_md], duration_ms=duration_ms)


def attempt_rate(*, attempt: Attempt, rating: int, ticked: list[int], now: datetime | None = None) -> Card:
    """Record the learner's recall rating for their attempt: FSRS-review the card, log the review, once."""
    now = now or timezone.now()
    points = len(attempt.question.key_points)
    ticked = sorted({index for index in ticked if 0 <= index < points})
    with transaction.atomic():
        # The conditional update is the replay guard: only one request can flip rated_at.
        if not Attempt.objects.filter(pk=attempt.pk, rated_at__isnull=True).update(rated_at=now):
            raise AlreadyRated
        owner = Visitor(user_id=attempt.user_id, anon_id=attempt.anon_id)
        card = Card.objects.owned_by(owner).filter(question=attempt.question).first()
        if card is None:
            card = Card(**owner.owner(), question=attempt.question, created_at=now)
            fsrs_card = scheduling.new_card(now)
        else:
            fsrs_card = card.fsrs_card()
        card.set_fsrs(scheduling.review(fsrs_card, rating, now, attempt.duration_ms, seed=str(attempt.token)))
        card.reps += 1
        card.save()
        review = Review.objects.create(
            card=card,
            rating=rating,
            reviewed_at=now,
            duration_ms=attempt.duration_ms,
            answer=attempt.answer,
            matched=attempt.matched,
            ticked=ticked,
        )
        Attempt.objects.filter(pk=attempt.pk).update(review=review)
    attempt.rated_at, attempt.review = now, review
    return card


def attempt_rating_choices(*, attempt: Attempt, now: datetime | None = None) -> list[scheduling.Choice]:
    """What each rating button would schedule for this attempt's card if pressed now (as attempt_rate does)."""
    owner = Visitor(user_id=attempt.user_id, anon_id=attempt.anon_id)
    card = Card.objects.owned_by(owner).filter(question=attempt.question).first()
    fsrs_card = card.fsrs_card() if card is not None else None
    return scheduling.preview(fsrs_card, now or timezone.now(), seed=str(attempt.token))
