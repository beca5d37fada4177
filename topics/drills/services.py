"""Drill operations that span several models: submit, rate, plan the day, progress, merge, export/import."""

import html
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from prepsite.links import lab_link
from prepsite.visitor import Visitor
from topics.drills import scheduling
from topics.drills.matching import match_key_points
from topics.drills.models import PHASES, Attempt, Card, MockInterview, Review
from topics.models import Question

EXPORT_FORMAT = "queue-prep-drills"
EXPORT_VERSION = 1
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
    matched = match_key_points(answer, question.key_points).matched_indexes if answer else []
    return Attempt.objects.create(
        **learner.owner(),
        question=question,
        answer=answer,
        gave_up=gave_up,
        duration_ms=duration,
        matched=matched,
        submitted_at=now,
    )


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
        card = Card.objects.for_visitor(owner).filter(question=attempt.question).first()
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
    card = Card.objects.for_visitor(owner).filter(question=attempt.question).first()
    fsrs_card = card.fsrs_card() if card is not None else None
    return scheduling.preview(fsrs_card, now or timezone.now(), seed=str(attempt.token))


@dataclass
class DrillPlan:
    due: list[Card]
    new: list[Question]
    new_left_today: int
    limit: int

    @property
    def items(self) -> list[Question]:
        return [card.question for card in self.due] + self.new

    @property
    def first(self) -> Question | None:
        items = self.items
        return items[0] if items else None

    def next_after(self, question: Question) -> Question | None:
        """The first planned question other than the one just drilled, so "Next" never loops back."""
        return next((item for item in self.items if item.pk != question.pk), None)


# Lists of questions never show answers or section bodies; loading them made list pages 10x slower.
HEAVY_FIELDS = (
    "answer_md", "answer_html", "key_points", "followups", "followup_tree", "staff_html",
    "section__body_md", "section__body_html", "section__body_text", "section__toc", "section__blocks",
)  # fmt: skip


def drill_plan(*, learner: Visitor | None, now: datetime | None = None, topic=None) -> DrillPlan:
    """What to practise now: due reviews first (most overdue first), then new questions up to the daily limit."""
    now = now or timezone.now()
    limit = new_per_day()
    cards = (
        Card.objects.for_visitor(learner)
        .select_related("question", "question__topic", "question__section")
        .defer(*(f"question__{name}" for name in HEAVY_FIELDS), "question__topic__intro_md", "question__topic__intro_html",
               "question__topic__diagram_html")
    )  # fmt: skip
    if topic is not None:
        cards = cards.filter(question__topic=topic)
    due = list(cards.due(now).order_by("due"))
    introduced = Card.objects.for_visitor(learner).introduced_since(start_of_today(now)).count()
    left = max(0, limit - introduced)
    # New material in reading order: earlier Study sections first, junior before senior before staff.
    questions = (
        Question.objects.select_related("topic", "section")
        .defer(*HEAVY_FIELDS, "topic__intro_md", "topic__intro_html", "topic__diagram_html")
        .order_by("section__order", "level", "order", "slug")
    )
    if topic is not None:
        questions = questions.filter(topic=topic)
    seen = Card.objects.for_visitor(learner).values("question_id")
    new = list(questions.exclude(pk__in=seen)[:left]) if left else []
    return DrillPlan(due=due, new=new, new_left_today=left, limit=limit)


def due_count(learner: Visitor | None, now: datetime | None = None) -> int:
    if learner is None:
        return 0
    return Card.objects.for_visitor(learner).due(now).count()


# Progress ---------------------------------------------------------------------------------------


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


def progress_for(*, learner: Visitor | None, now: datetime | None = None, days: int = 30) -> Progress:
    now = now or timezone.now()
    by_section: dict[int, ConceptProgress] = {}
    questions = Question.objects.select_related("section").order_by("section__topic", "section__order", "order")
    for question in questions:
        concept = by_section.setdefault(question.section_id, ConceptProgress(question.section.title))
        concept.questions += 1
    totals = ConceptProgress("All questions", questions=sum(c.questions for c in by_section.values()))
    for card in Card.objects.for_visitor(learner).select_related("question"):
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
    today = start_of_today(now).date()
    reviews = Review.objects.filter(card__in=Card.objects.for_visitor(learner))
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
    )


def streak(days_with_reviews: set, today) -> int:
    """Consecutive days with a review, ending today (or yesterday, so the streak survives until tonight)."""
    day = today if today in days_with_reviews else today - timedelta(days=1)
    count = 0
    while day in days_with_reviews:
        count += 1
        day -= timedelta(days=1)
    return count


def bar_chart(per_day: list[tuple], *, width: int = 640, height: int = 160) -> dict:
    """Geometry for the server-rendered SVG: bars, value labels and a few date labels."""
    top, bottom, left = 18, 22, 4
    plot_h = height - top - bottom
    peak = max((count for _, count in per_day), default=0) or 1
    slot = (width - left) / max(1, len(per_day))
    bars = []
    for i, (day, count) in enumerate(per_day):
        h = round(plot_h * count / peak, 1)
        x = round(left + i * slot + slot * 0.15, 1)
        bars.append(
            {
                "x": x,
                "y": round(top + plot_h - h, 1),
                "w": round(slot * 0.7, 1),
                "h": h,
                "count": count,
                "label_x": round(x + slot * 0.35, 1),
                "label_y": round(top + plot_h - h - 4, 1),
                "day": day,
                # Label every 7th day counting back from today; the last label hugs the right edge.
                "show_day": (len(per_day) - 1 - i) % 7 == 0,
                "anchor": "end" if i == len(per_day) - 1 else "middle",
                "day_x": round(x + slot * 0.7, 1) if i == len(per_day) - 1 else round(x + slot * 0.35, 1),
            }
        )
    return {"width": width, "height": height, "bars": bars, "baseline": top + plot_h, "day_y": height - 6}


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
        for card in Card.objects.for_visitor(source):
            existing = Card.objects.for_visitor(target).filter(question_id=card.question_id).first()
            if existing is None:
                Card.objects.filter(pk=card.pk).update(**target.owner())
            else:
                _absorb_card(keep=existing, other=card)
            merged += 1
        Attempt.objects.for_visitor(source).update(**target.owner())
        MockInterview.objects.for_visitor(source).update(**target.owner())
    return merged


def export_data(*, learner: Visitor | None, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    cards = Card.objects.for_visitor(learner).select_related("question__topic").prefetch_related("reviews")
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
                card = Card.objects.for_visitor(learner).filter(question=item["question"]).first()
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


# Mock interviews --------------------------------------------------------------------------------

SURPRISE_FALLBACK_NOTE = (
    "No full design prompts are loaded yet, so “Surprise me” picked a staff-level question instead. "
    "Use the five phases anyway: it is the shape the interview will take."
)


def mock_prompt_surprise() -> tuple[Question | None, str]:
    """A random full design prompt; else a staff-level question and a note saying so; never a junior one-liner."""
    design = Question.objects.filter(kind=Question.Kind.DESIGN).order_by("?").first()
    if design is not None:
        return design, ""
    staff = Question.objects.filter(level=Question.Level.STAFF).order_by("?").first()
    return staff, SURPRISE_FALLBACK_NOTE if staff is not None else ""


def mock_curveballs(question: Question) -> list[dict]:
    """The interviewer's curveballs: the prompt's own follow-ups first, then the topic's, with Lab links."""
    balls = [{"text": text} for text in question.followups if isinstance(text, str) and text.strip()]
    for ball in question.topic.curveballs:
        extra = {"url": lab_link(ball["preset"])} if ball.get("preset") else {}
        if ball.get("also"):
            extra["also_url"] = lab_link(ball["also"])
        balls.append({**ball, **extra})
    return balls


_H2 = re.compile(r"<h2\b[^>]*>(.*?)</h2\s*>", re.IGNORECASE | re.DOTALL)
_MD_H2 = re.compile(r"^ {0,3}##[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_MD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _heading_words(text: str) -> str:
    """'2. Failure modes &amp; <em>wrap-up</em>' -> 'failure modes wrap up'."""
    text = html.unescape(re.sub(r"<[^>]+>", "", text)).lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split()).lstrip("0123456789 ")


def _is_phase_heading(heading: str, phase: dict) -> bool:
    words, title = _heading_words(heading), _heading_words(phase["title"])
    return words.startswith(title) or words.split()[:1] == title.split()[:1]


def _phases_match(headings: list[str]) -> bool:
    return len(headings) == len(PHASES) and all(map(_is_phase_heading, headings, PHASES))


def answer_html_phases(answer_html: str) -> tuple[str, list[str]] | None:
    """Split a phased model answer at its five <h2>s: (what comes before them, one HTML part per phase).

    None when the headings are not exactly the mock interview's phases in order (a concept question's
    answer), so the caller shows the whole answer once instead of a wrong split."""
    matches = list(_H2.finditer(answer_html))
    if not _phases_match([m.group(1) for m in matches]):
        return None
    ends = [m.start() for m in matches[1:]] + [len(answer_html)]
    parts = [answer_html[m.end() : end].strip() for m, end in zip(matches, ends, strict=True)]
    return answer_html[: matches[0].start()].strip(), parts


def answer_md_phases(answer_md: str) -> tuple[str, list[str]] | None:
    """The same split on the Markdown source (for the export); `##` inside code fences is not a heading."""
    lines = answer_md.splitlines()
    starts, headings, fence = [], [], ""
    for number, line in enumerate(lines):
        opened = _MD_FENCE.match(line)
        if fence:
            fence = "" if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence) else fence
        elif opened:
            fence = opened.group(1)
        elif heading := _MD_H2.match(line):
            starts.append(number)
            headings.append(heading.group(1))
    if not _phases_match(headings):
        return None
    ends = [*starts[1:], len(lines)]
    parts = ["\n".join(lines[start + 1 : end]).strip() for start, end in zip(starts, ends, strict=True)]
    return "\n".join(lines[: starts[0]]).strip(), parts


@dataclass
class MockReview:
    """A mock interview beside the model answer: per phase the learner's notes and the model's part."""

    phases: list[dict]  # the mock's phases, each with "model_html" and "model_md" ("" when not phased)
    phased: bool  # False: the model answer has no phase headings and is shown once, whole
    intro_html: str
    intro_md: str


def mock_review(*, mock: MockInterview) -> MockReview:
    question = mock.question
    split_html = answer_html_phases(question.answer_html)
    split_md = answer_md_phases(question.answer_md)
    phases = mock.phases()
    if split_html is None:
        return MockReview(
            phases=[{**phase, "model_html": "", "model_md": ""} for phase in phases],
            phased=False,
            intro_html=question.answer_html,
            intro_md=question.answer_md.strip(),
        )
    intro_html, html_parts = split_html
    intro_md, md_parts = split_md if split_md is not None else (question.answer_md.strip(), [""] * len(phases))
    return MockReview(
        phases=[
            {**phase, "model_html": part_html, "model_md": part_md}
            for phase, part_html, part_md in zip(phases, html_parts, md_parts, strict=True)
        ],
        phased=True,
        intro_html=intro_html,
        intro_md=intro_md,
    )
