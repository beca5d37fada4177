"""FSRS scheduling (the `fsrs` package): one scheduler for the site and small helpers around it."""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fsrs import Card as FsrsCard
from fsrs import Rating, Scheduler, State
from fsrs.scheduler import FUZZ_RANGES

# Fuzz is applied below from a seed, not by fsrs' global random(): the interval a rating button shows must
# be the interval that rating then schedules.
SCHEDULER = Scheduler(enable_fuzzing=False)
RATINGS = {1: "Again", 2: "Hard", 3: "Good", 4: "Easy"}
MASTERED_STABILITY_DAYS = 21.0
MASTERED_RULE = f"A question counts as mastered when its FSRS stability is at least {MASTERED_STABILITY_DAYS:g} days."

__all__ = [
    "MASTERED_RULE",
    "RATINGS",
    "FsrsCard",
    "Rating",
    "State",
    "new_card",
    "preview",
    "retrievability",
    "review",
]


def utc(moment: datetime) -> datetime:
    """fsrs insists on tzinfo == datetime.UTC exactly."""
    return moment.astimezone(UTC)


def new_card(now: datetime) -> FsrsCard:
    return FsrsCard(card_id=int(now.timestamp() * 1000), due=utc(now))


def _fuzz_fraction(seed: str, card: FsrsCard, rating: int) -> float:
    """A stable number in [0, 1) for this review: the same seed, card state and rating give the same fuzz."""
    key = f"{seed or card.card_id}:{card.last_review}:{rating}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def _fuzzed_days(days: int, fraction: float) -> int:
    """fsrs' own fuzz (Anki's ranges), with the random draw replaced by `fraction`."""
    if days < 2.5:
        return days
    delta = 1.0 + sum(r["factor"] * max(min(float(days), r["end"]) - r["start"], 0.0) for r in FUZZ_RANGES)
    high = min(round(days + delta), SCHEDULER.maximum_interval)
    low = min(max(2, round(days - delta)), high)
    return min(round(fraction * (high - low + 1) + low), SCHEDULER.maximum_interval)


def review(card: FsrsCard, rating: int, now: datetime, duration_ms: int | None = None, *, seed: str = "") -> FsrsCard:
    """Review `card` with `rating` at `now`; `seed` (an attempt's token) makes the interval fuzz repeatable."""
    now = utc(now)
    reviewed, _log = SCHEDULER.review_card(card, Rating(rating), review_datetime=now, review_duration=duration_ms)
    if reviewed.state == State.Review:
        days = (reviewed.due - now).days
        reviewed.due = now + timedelta(days=_fuzzed_days(days, _fuzz_fraction(seed, card, rating)))
    return reviewed


@dataclass(frozen=True)
class Choice:
    """What one rating button would do: the due date it schedules and that interval in short and in words."""

    rating: int
    label: str
    due: datetime
    short: str
    words: str


def preview(card: FsrsCard | None, now: datetime, *, seed: str = "") -> list[Choice]:
    """The due date each rating would give `card` (None: a card never reviewed) if rated at `now`."""
    card = card or new_card(now)
    choices = []
    for rating, label in RATINGS.items():
        due = review(card, rating, now, seed=seed).due
        choices.append(Choice(rating, label, due, short_interval(due - now), interval_words(due - now)))
    return choices


INTERVAL_UNITS = (  # (seconds, short suffix, word); months and years as Anki counts them
    (365 * 86400, "y", "year"),
    (30 * 86400, "mo", "month"),
    (86400, "d", "day"),
    (3600, "h", "hour"),
    (60, "m", "minute"),
)


def _interval_parts(delta: timedelta) -> tuple[str, str, str] | None:
    """(count, short suffix, word) in the largest unit that fits, or None under a minute."""
    seconds = max(0.0, delta.total_seconds())
    for size, short, word in INTERVAL_UNITS:
        if seconds >= size:
            count = seconds / size
            # A year and a half is worth saying; 4.4 days is not.
            text = f"{count:.1f}".removesuffix(".0") if size == 365 * 86400 and count < 10 else str(round(count))
            return text, short, word
    return None


def short_interval(delta: timedelta) -> str:
    """Anki's button labels: '<1m', '10m', '1d', '4d', '3mo', '1.5y'."""
    parts = _interval_parts(delta)
    return f"{parts[0]}{parts[1]}" if parts else "<1m"


def interval_words(delta: timedelta) -> str:
    """The same interval for a screen reader: '10 minutes', '1 day', '3 months'."""
    parts = _interval_parts(delta)
    if parts is None:
        return "less than a minute"
    count, _short, word = parts
    return f"{count} {word}{'' if count == '1' else 's'}"


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
