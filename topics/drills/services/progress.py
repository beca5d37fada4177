"""Progress: readiness per concept, reviews per day, the streak."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from prepsite.visitor import Visitor
from topics.drills import scheduling
from topics.drills.models import Card, Review
from topics.drills.services.attempts import start_of_today
from topics.models import Question, Section

FORECAST_DAYS = 14
# Straight after any review (even "Again") FSRS recall is ~100%, which says nothing about readiness.
READINESS_SETTLE = timedelta(days=1)
READINESS_RULE = (
    "Readiness is the mean FSRS recall probability (retrievability) right now across a concept's questions; "
    "questions you have not drilled count as 0%. Questions reviewed in the last 24 hours are left out, because "
    "recall is always near 100% straight after a review; a concept shows “—” until at least one of its drilled "
    "questions was last reviewed a day or more ago."
)


@dataclass
class ConceptProgress:
    title: str
    slug: str = ""  # the chapter's, for "drill this chapter"
    topic_slug: str = ""
    questions: int = 0
    seen: int = 0
    due: int = 0
    mastered: int = 0
    recent: int = 0  # drilled, but last reviewed less than READINESS_SETTLE ago: not counted
    recall_sum: float = 0.0

    @property
    def readiness(self) -> int | None:
        """Mean recall over the questions that can be measured, in percent; None while every drilled one is fresh."""
        if self.seen and self.recent == self.seen:
            return None
        measured = self.questions - self.recent
        return round(100 * self.recall_sum / measured) if measured > 0 else 0


@dataclass
class Progress:
    concepts: list[ConceptProgress]
    streak: int
    per_day: list[tuple[datetime, int]]
    total_reviews: int
    totals: ConceptProgress = field(default_factory=lambda: ConceptProgress("All"))
    forecast: list[tuple[datetime, int]] = field(default_factory=list)  # reviews due per day, next FORECAST_DAYS

    @property
    def forecast_peak(self) -> int:
        return max((count for _, count in self.forecast), default=0)


def progress_for(*, learner: Visitor | None, now: datetime | None = None, days: int = 30) -> Progress:
    now = now or timezone.now()
    by_section: dict[int, ConceptProgress] = {}
    for section in (
        Section.objects.select_related("topic")
        .only("pk", "slug", "title", "topic__slug")
        .order_by("topic__order", "order")
    ):  # every chapter, those without questions too, so none silently drops out
        by_section[section.pk] = ConceptProgress(section.title, slug=section.slug, topic_slug=section.topic.slug)
    for section_id in Question.objects.values_list("section_id", flat=True):
        if section_id in by_section:
            by_section[section_id].questions += 1
    totals = ConceptProgress("All questions", questions=sum(c.questions for c in by_section.values()))
    due_days: dict = defaultdict(int)
    today = start_of_today(now).date()
    for card in Card.objects.owned_by(learner).select_related("question"):
        due_days[max(card.due.astimezone(UTC).date(), today)] += 1
        concept = by_section.get(card.question.section_id)
        if concept is None:
            continue
        fsrs_card = card.fsrs_card()
        recent = card.last_review is not None and now - card.last_review < READINESS_SETTLE
        recall = 0.0 if recent else scheduling.retrievability(fsrs_card, now)
        mastered = scheduling.is_mastered(fsrs_card)
        for bucket in (concept, totals):
            bucket.seen += 1
            bucket.due += card.due <= now
            bucket.mastered += mastered
            bucket.recent += recent
            bucket.recall_sum += recall
    reviews = Review.objects.filter(card__in=Card.objects.owned_by(learner))
    counts: dict = defaultdict(int)
    for reviewed_at in reviews.values_list("reviewed_at", flat=True):
        counts[reviewed_at.astimezone(UTC).date()] += 1
    per_day = [(today - timedelta(days=offset), 0) for offset in range(days - 1, -1, -1)]
    per_day = [(day, counts.get(day, 0)) for day, _ in per_day]
    return Progress(
        concepts=list(by_section.values()),
        streak=streak(set(counts), today),
        per_day=per_day,
        total_reviews=sum(counts.values()),
        totals=totals,
        forecast=[
            (today + timedelta(days=offset), due_days.get(today + timedelta(days=offset), 0))
            for offset in range(FORECAST_DAYS)
        ],
    )


def streak(days_with_reviews: set, today) -> int:
    """Consecutive days with a review, ending today (or yesterday, so the streak survives until tonight)."""
    day = today if today in days_with_reviews else today - timedelta(days=1)
    count = 0
    while day in days_with_reviews:
        count += 1
        day -= timedelta(days=1)
    return count
