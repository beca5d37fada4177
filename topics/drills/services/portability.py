"""Moving a learner's drill history: an anonymous visitor's into their account, and export/import as JSON."""

import json
import math
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from prepsite.visitor import Visitor
from topics.drills import scheduling
from topics.drills.models import Attempt, Card, MockInterview, Review
from topics.drills.services.attempts import MAX_DURATION_MS
from topics.models import Question

EXPORT_FORMAT = "queue-prep-drills"
EXPORT_VERSION = 1


# Merging an anonymous learner into an account, and import -----------------------------------------


def _absorb_card(*, keep: Card, other: Card) -> None:
    """Move other's reviews onto keep (skipping ones keep already has), adopt the later state, drop other."""
    have = set(keep.reviews.values_list("reviewed_at", "rating"))
    for review in other.reviews.all():
        if (review.reviewed_at, review.rating) not in have:
            review.card = keep
            review.save(update_fields=["card"])
            have.add((review.reviewed_at, review.rating))
    if (other.last_review or datetime.min.replace(tzinfo=UTC)) > (keep.last_review or datetime.min.replace(tzinfo=UTC)):
        keep.fsrs, keep.due, keep.last_review, keep.state = other.fsrs, other.due, other.last_review, other.state
    keep.reps = keep.reviews.count()
    keep.created_at = min(keep.created_at, other.created_at)
    keep.save()
    other.delete()


def learner_merge(*, source: Visitor, target: Visitor) -> int:
    """Move the anonymous learner's drill history into the account; returns the number of cards merged."""
    if source == target:
        return 0
    merged = 0
    with transaction.atomic():
        for card in Card.objects.owned_by(source):
            existing = Card.objects.owned_by(target).filter(question_id=card.question_id).first()
            if existing is None:
                Card.objects.filter(pk=card.pk).update(**target.owner())
            else:
                _absorb_card(keep=existing, other=card)
            merged += 1
        Attempt.objects.owned_by(source).update(**target.owner())
        MockInterview.objects.owned_by(source).update(**target.owner())
    return merged


def export_data(*, learner: Visitor | None, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    cards = Card.objects.owned_by(learner).select_related("question__topic").prefetch_related("reviews")
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": now.isoformat(),
        "cards": [
            {
                "topic": card.question.topic.slug,
                "question": card.question.slug,
                "created_at": card.created_at.isoformat(),
                "reps": card.reps,
                "fsrs": card.fsrs,
                "reviews": [
                    {
                        "reviewed_at": review.reviewed_at.isoformat(),
                        "rating": review.rating,
                        "duration_ms": review.duration_ms,
                        "answer": review.answer,
                        "matched": review.matched,
                        "ticked": review.ticked,
                    }
                    for review in card.reviews.all()
                ],
            }
            for card in cards
        ],
    }


class ImportRejected(ValueError):
    """A file we cannot import; the message is shown to the learner as is."""


EARLIEST_REVIEW = datetime(2000, 1, 1, tzinfo=UTC)
MAX_NUMBER_DIGITS = 20  # ids are epoch milliseconds; anything longer is not from an export
# What one import may hold. A card per question (the bank has about a hundred); 10,000 reviews is years
# of daily practice, and parsing plus writing that many takes about a second, not the 25 s of 84,000.
MAX_IMPORT_CARDS = 1_000
MAX_IMPORT_REVIEWS = 10_000
# Reviews written per transaction: SQLite has one write lock, and no import may hold it for long.
IMPORT_BATCH = 500


def _reject_constant(name: str):
    raise ImportRejected(f"The file contains {name}, which is not a number a drills export can hold.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ImportRejected(f"The file contains the number {text[:40]}, which is too large to be a drills value.")
    return value


def _short_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise ImportRejected(f"The file contains a {len(text):,}-digit number; a drills export has no such numbers.")
    return int(text)


def export_loads(raw: bytes):
    """Decode an uploaded export; non-finite or absurdly long numbers are rejected, since they cannot be stored."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ImportRejected("That file is not valid JSON, so it cannot be a drills export.") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_short_int)
    except ImportRejected:
        raise
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError, as is int()'s digit limit
        raise ImportRejected("That file is not valid JSON, so it cannot be a drills export.") from None


def _utc(moment: datetime, where: str) -> datetime:
    if moment.tzinfo is None:
        raise ImportRejected(f"{where}: date-time has no time zone.")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise ImportRejected(f"{where}: date-time {moment.isoformat()} is out of range in UTC.") from None


def _aware(value, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ImportRejected(f"{where}: not an ISO date-time: {str(value)[:40]!r}.") from None
    return _utc(moment, where)


def _review_moment(value, where: str) -> datetime:
    """A past review time: not before 2000, not more than a day ahead (clocks differ, a day does not)."""
    moment = _aware(value, where) if not isinstance(value, datetime) else value
    if moment < EARLIEST_REVIEW:
        raise ImportRejected(f"{where}: review date {moment:%Y-%m-%d} is before 2000.")
    if moment > timezone.now() + timedelta(days=1):
        raise ImportRejected(f"{where}: review date {moment:%Y-%m-%d} is in the future.")
    return moment


def _storable(text: str) -> bool:
    """False for lone surrogates (JSON "\\ud800"), which no database stores as UTF-8, and for NUL, which
    SQLite stores and PostgreSQL refuses: what one database accepts the other must too."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _index_list(value, where: str) -> list[int]:
    if not isinstance(value, list) or not all(_is_int(i) and 0 <= i < 50 for i in value):
        raise ImportRejected(f"{where}: expected a list of small integers.")
    return value


def _fsrs_card(value, where: str) -> scheduling.FsrsCard:
    """fsrs' own from_dict coerces (int(1e300), int("007")); an export holds exactly what to_dict wrote."""
    if not isinstance(value, dict):
        raise ImportRejected(f"{where}: invalid FSRS card state.")
    card_id = value.get("card_id")
    if not _is_int(card_id) or not 0 <= card_id < 10**MAX_NUMBER_DIGITS:
        raise ImportRejected(f"{where}: FSRS card_id must be a whole number of at most {MAX_NUMBER_DIGITS} digits.")
    if not _is_int(value.get("state")):
        raise ImportRejected(f"{where}: invalid FSRS card state.")
    for name in ("stability", "difficulty"):
        number = value.get(name)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
            raise ImportRejected(f"{where}: FSRS {name} must be a number.")
    for name in ("due", "last_review"):
        if value.get(name) is not None and not isinstance(value.get(name), str):
            raise ImportRejected(f"{where}: FSRS {name} must be an ISO date-time.")
    try:
        return scheduling.FsrsCard.from_dict(value)
    except (KeyError, TypeError, ValueError, OverflowError):
        raise ImportRejected(f"{where}: invalid FSRS card state.") from None


def _checked_fsrs(card: scheduling.FsrsCard, where: str) -> scheduling.FsrsCard:
    """Reject states the scheduler would choke on later, by reviewing a copy once now."""
    if card.due.tzinfo is None or (card.last_review is not None and card.last_review.tzinfo is None):
        raise ImportRejected(f"{where}: FSRS dates must carry a time zone.")
    if card.step is not None and (not isinstance(card.step, int) or isinstance(card.step, bool) or card.step < 0):
        raise ImportRejected(f"{where}: invalid FSRS learning step.")
    for name in ("stability", "difficulty"):
        value = getattr(card, name)
        if value is not None and not math.isfinite(value):
            raise ImportRejected(f"{where}: FSRS {name} must be a finite number.")
    card.due = _utc(card.due, f"{where}, FSRS due")
    card.last_review = _utc(card.last_review, f"{where}, FSRS last_review") if card.last_review else None
    if card.last_review is not None:
        _review_moment(card.last_review, f"{where}, FSRS last_review")
    try:
        scheduling.review(card, 3, max(timezone.now(), card.last_review or card.due))
    except Exception:  # any failure means the state is unusable
        raise ImportRejected(f"{where}: the FSRS card state is inconsistent.") from None
    return card


def parse_export(data) -> list[dict]:
    """Validate an export document completely before anything is written; returns cleaned cards."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ImportRejected("This is not a Queue Prep drills export (its “format” field is missing or different).")
    if data.get("version") != EXPORT_VERSION:
        raise ImportRejected(
            f"Unsupported export version {data.get('version')!r}; this site reads version {EXPORT_VERSION}."
        )
    cards = data.get("cards")
    if not isinstance(cards, list):
        raise ImportRejected("The export has no “cards” list.")
    if len(cards) > MAX_IMPORT_CARDS:
        raise ImportRejected(
            f"The file holds {len(cards):,} cards; an import may hold at most {MAX_IMPORT_CARDS:,} cards."
        )
    total_reviews = sum(len(c["reviews"]) for c in cards if isinstance(c, dict) and isinstance(c.get("reviews"), list))
    if total_reviews > MAX_IMPORT_REVIEWS:
        raise ImportRejected(
            f"The file holds {total_reviews:,} reviews; an import may hold at most {MAX_IMPORT_REVIEWS:,} reviews. "
            "Split it into several files and import them one after another."
        )
    questions = {
        (q.topic.slug, q.slug): q for q in Question.objects.select_related("topic").only("slug", "topic__slug")
    }
    cleaned = []
    seen = set()
    for n, item in enumerate(cards, start=1):
        where = f"card {n}"
        if not isinstance(item, dict):
            raise ImportRejected(f"{where}: expected an object.")
        key = (item.get("topic"), item.get("question"))
        if not all(isinstance(part, str) for part in key):
            raise ImportRejected(f"{where}: “topic” and “question” must be text.")
        question = questions.get(key)
        if question is None:
            raise ImportRejected(f"{where}: unknown question {str(key[1])[:100]!r} in topic {str(key[0])[:100]!r}.")
        if key in seen:
            raise ImportRejected(f"{where}: question {key[1]!r} appears twice.")
        seen.add(key)
        fsrs_card = _checked_fsrs(_fsrs_card(item.get("fsrs"), where), where)
        reviews = item.get("reviews", [])
        if not isinstance(reviews, list):
            raise ImportRejected(f"{where}: “reviews” must be a list.")
        clean_reviews = []
        for m, review in enumerate(reviews, start=1):
            rwhere = f"{where}, review {m}"
            if not isinstance(review, dict):
                raise ImportRejected(f"{rwhere}: expected an object.")
            rating = review.get("rating")
            if not isinstance(rating, int) or isinstance(rating, bool) or rating not in scheduling.RATINGS:
                raise ImportRejected(f"{rwhere}: rating must be 1, 2, 3 or 4.")
            answer = review.get("answer", "")
            if not isinstance(answer, str) or len(answer) > 20_000:
                raise ImportRejected(f"{rwhere}: answer must be text of at most 20,000 characters.")
            if not _storable(answer):
                raise ImportRejected(f"{rwhere}: answer must be text without NUL characters or broken Unicode.")
            duration = review.get("duration_ms")
            if duration is not None and (not _is_int(duration) or not 0 <= duration <= MAX_DURATION_MS):
                raise ImportRejected(f"{rwhere}: duration_ms must be a whole number of milliseconds.")
            clean_reviews.append(
                {
                    "reviewed_at": _review_moment(review.get("reviewed_at"), rwhere),
                    "rating": rating,
                    "duration_ms": duration,
                    "answer": answer,
                    "matched": _index_list(review.get("matched", []), rwhere),
                    "ticked": _index_list(review.get("ticked", []), rwhere),
                }
            )
        created_at = item.get("created_at")
        if created_at is None:  # a card is created at its first review
            created_at = min([r["reviewed_at"] for r in clean_reviews] or [fsrs_card.last_review or timezone.now()])
        else:
            created_at = _aware(created_at, f"{where}, created_at")
        # Clamped, not refused: earlier imports stored the FSRS due date here, often in the future, and a
        # future creation would count as "new today" for ever.
        created_at = min(max(created_at, EARLIEST_REVIEW), timezone.now())
        cleaned.append(
            {
                "question": question,
                "fsrs": fsrs_card,
                "created_at": created_at,
                "reviews": clean_reviews,
            }
        )
    return cleaned


def _import_batches(cards: list[dict], size: int):
    """Split the cleaned cards into batches of at most max(size, 2) units (a card, or one of its reviews)."""
    batch: list[tuple[dict, list[dict]]] = []
    room = size
    for item in cards:
        reviews = item["reviews"]
        start = 0
        while True:
            left = len(reviews) - start
            if batch and room < 1 + min(1, left):  # no room for the card and at least one of its reviews
                yield batch
                batch, room = [], size
            part = reviews[start : start + max(min(room - 1, left), min(1, left))]
            batch.append((item, part))
            room -= 1 + len(part)
            start += len(part)
            if start >= len(reviews):
                break
    if batch:
        yield batch


def import_data(*, learner: Visitor, data) -> dict:
    """Import an export; re-importing the same file adds nothing. Returns counts for the message."""
    return import_cards(learner=learner, cards=parse_export(data))


def import_cards(*, learner: Visitor, cards: list[dict]) -> dict:
    """Write cards that parse_export() cleaned; re-importing the same cards adds nothing.

    The whole file is validated before anything is written; the writes then go in transactions of at
    most IMPORT_BATCH reviews, so no import holds SQLite's write lock long enough to lock out other
    visitors. A batch that fails leaves the earlier ones: importing the file again adds the rest.
    """
    added_cards = added_reviews = 0
    for batch in _import_batches(cards, IMPORT_BATCH):
        with transaction.atomic():
            for item, reviews in batch:
                card = Card.objects.owned_by(learner).filter(question=item["question"]).first()
                incoming = Card(**learner.owner(), question=item["question"], created_at=item["created_at"])
                incoming.set_fsrs(item["fsrs"])
                if card is None:
                    card = incoming
                    card.save()
                    added_cards += 1
                elif (incoming.last_review or datetime.min.replace(tzinfo=UTC)) > (
                    card.last_review or datetime.min.replace(tzinfo=UTC)
                ):
                    card.fsrs, card.due, card.last_review, card.state = (
                        incoming.fsrs,
                        incoming.due,
                        incoming.last_review,
                        incoming.state,
                    )
                moments = {review["reviewed_at"] for review in reviews}
                have = set(card.reviews.filter(reviewed_at__in=moments).values_list("reviewed_at", "rating"))
                new = []
                for review in reviews:
                    if (review["reviewed_at"], review["rating"]) not in have:
                        new.append(Review(card=card, **review))
                        have.add((review["reviewed_at"], review["rating"]))
                Review.objects.bulk_create(new)
                added_reviews += len(new)
                card.reps = card.reviews.count()
                card.save()
    return {"cards": len(cards), "new_cards": added_cards, "new_reviews": added_reviews}
