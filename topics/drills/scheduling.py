"""FSRS scheduling (the `fsrs` package): one scheduler for the site and small helpers around it."""

from datetime import UTC, datetime, timedelta

from fsrs import Card as FsrsCard
from fsrs import Rating, Scheduler, State

SCHEDULER = Scheduler()
RATINGS = {1: "Again", 2: "Hard", 3: "Good", 4: "Easy"}
MASTERED_STABILITY_DAYS = 21.0
MASTERED_RULE = f"A question counts as mastered when its FSRS stability is at least {MASTERED_STABILITY_DAYS:g} days."

__all__ = ["MASTERED_RULE", "RATINGS", "FsrsCard", "Rating", "State", "new_card", "retrievability", "review"]


def utc(moment: datetime) -> datetime:
    """fsrs insists on tzinfo == datetime.UTC exactly."""
    return moment.astimezone(UTC)


def new_card(now: datetime) -> FsrsCard:
    return FsrsCard(card_id=int(now.timestamp() * 1000), due=utc(now))


def review(card: FsrsCard, rating: int, now: datetime, duration_ms: int | None = None) -> FsrsCard:
    reviewed, _log = SCHEDULER.review_card(card, Rating(rating), review_datetime=utc(now), review_duration=duration_ms)
    return reviewed


def retrievability(card: FsrsCard, now: datetime) -> float:
    return float(SCHEDULER.get_card_retrievability(card, current_datetime=utc(now)))


def is_mastered(card: FsrsCard) -> bool:
    return card.stability is not None and card.stability >= MASTERED_STABILITY_DAYS


def humanize_delta(delta: timedelta) -> str:
    """'10 minutes', '3 days': the single largest unit, for 'Next review in …'."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size) if unit != "minute" else max(1, round(seconds / size))
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


def clock(milliseconds: int | None) -> str:
    """'4:05' for a duration; '' when unknown."""
    if milliseconds is None:
        return ""
    minutes, seconds = divmod(round(milliseconds / 1000), 60)
    return f"{minutes}:{seconds:02d}"
