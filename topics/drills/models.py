"""Drill state per learner: FSRS cards, reviews, one-shot attempts and mock interviews.

A learner is a visitor (`prepsite.visitor`): the account when logged in, else an anonymous id; every
row carries both columns and is only ever read through `owned_by()` (prepsite.ownership).
"""

import uuid
from datetime import datetime, timedelta

from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from prepsite.ownership import VisitorOwned, VisitorOwnedQuerySet
from topics.drills import scheduling
from topics.models import Question

ANSWER_MAX = 20_000
NOTES_MAX = 20_000


class CardQuerySet(VisitorOwnedQuerySet):
    def due(self, now: datetime | None = None) -> "CardQuerySet":
        return self.filter(due__lte=now or timezone.now())

    def introduced_since(self, moment: datetime) -> "CardQuerySet":
        return self.filter(created_at__gte=moment)


class Card(VisitorOwned):
    """One learner's FSRS memory state for one question (created at the first rating)."""

    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="drill_cards")
    fsrs = models.JSONField(help_text="fsrs.Card.to_dict()")
    due = models.DateTimeField(db_index=True)
    last_review = models.DateTimeField(null=True, blank=True)
    state = models.PositiveSmallIntegerField(default=scheduling.State.Learning.value)
    reps = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    objects = CardQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "question"], condition=models.Q(user__isnull=False), name="drills_one_card_per_user"
            ),
            models.UniqueConstraint(
                fields=["anon_id", "question"],
                condition=models.Q(user__isnull=True),
                name="drills_one_card_per_session",
            ),
        ]

    def __str__(self) -> str:
        return f"card {self.question.slug} due {self.due:%Y-%m-%d %H:%M}"

    def fsrs_card(self) -> scheduling.FsrsCard:
        return scheduling.FsrsCard.from_dict(self.fsrs)

    def set_fsrs(self, card: scheduling.FsrsCard) -> None:
        self.fsrs = card.to_dict()
        self.due = card.due
        self.last_review = card.last_review
        self.state = card.state.value

    @property
    def stability(self) -> float | None:
        return self.fsrs.get("stability")

    def retrievability(self, now: datetime) -> float:
        return scheduling.retrievability(self.fsrs_card(), now)

    @property
    def mastered(self) -> bool:
        return scheduling.is_mastered(self.fsrs_card())


class LearnerPlan(VisitorOwned):
    """A learner's interview date and target level: the day-by-day plan (services.path) is built from it."""

    interview_date = models.DateField()
    level = models.CharField(max_length=10, choices=Question.Level.choices, default=Question.Level.SENIOR)
    hide_junior = models.BooleanField(default=False)
    time_zone = models.CharField(max_length=64, default="UTC", help_text="IANA name from the browser")
    started_on = models.DateField(help_text="day 1 of the plan, in the learner's time zone")
    updated_at = models.DateTimeField(default=timezone.now)

    objects = VisitorOwnedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(user__isnull=False), name="drills_one_plan_per_user"
            ),
            models.UniqueConstraint(
                fields=["anon_id"], condition=models.Q(user__isnull=True), name="drills_one_plan_per_session"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_level_display()} interview on {self.interview_date}"


class Review(models.Model):
    card = models.ForeignKey(Card, on_delete=models.CASCADE, related_name="reviews")
    rating = models.PositiveSmallIntegerField(choices=[(k, v) for k, v in scheduling.RATINGS.items()])
    reviewed_at = models.DateTimeField(db_index=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    answer = models.TextField(blank=True, max_length=ANSWER_MAX)
    matched = models.JSONField(default=list, help_text="indexes of key points the matcher found")
    ticked = models.JSONField(default=list, help_text="indexes of key points the learner ticked")

    class Meta:
        ordering = ["reviewed_at"]
        constraints = [
            # The stable identity export/import and account merges deduplicate on.
            models.UniqueConstraint(fields=["card", "reviewed_at", "rating"], name="drills_review_identity")
        ]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} at {self.reviewed_at:%Y-%m-%d %H:%M}"


class Attempt(VisitorOwned):
    """A submitted answer: the one-shot ticket that lets its own learner see the reveal and rate once."""

    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="drill_attempts")
    answer = models.TextField(blank=True, max_length=ANSWER_MAX)
    gave_up = models.BooleanField(default=False)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    matched = models.JSONField(default=list)
    submitted_at = models.DateTimeField(default=timezone.now)
    rated_at = models.DateTimeField(null=True, blank=True)
    review = models.OneToOneField(Review, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempt")

    objects = VisitorOwnedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"attempt {self.token} on {self.question.slug}"

    def get_absolute_url(self) -> str:
        return reverse(
            "drills:attempt",
            kwargs={"topic": self.question.topic.slug, "slug": self.question.slug, "token": self.token},
        )


PHASES = [
    {
        "key": "requirements",
        "title": "Requirements",
        "minutes": 5,
        "guide": "Functional scope, delivery guarantees, ordering, latency SLO, what may be lost.",
    },
    {
        "key": "estimates",
        "title": "Estimates",
        "minutes": 5,
        "guide": "Peak messages per second, job duration, workers needed (Little's law), storage and retention.",
    },
    {
        "key": "high_level",
        "title": "High-level design",
        "minutes": 10,
        "guide": "Producers, broker, consumers, storage; where acknowledgements happen; the happy path end to end.",
    },
    {
        "key": "deep_dive",
        "title": "Deep dive",
        "minutes": 15,
        "guide": "Retries with backoff and jitter, idempotency, DLQ and redrive, backpressure, scaling signals.",
    },
    {
        "key": "failure_modes",
        "title": "Failure modes & wrap-up",
        "minutes": 10,
        "guide": "Answer the interviewer's curveballs, then summarise trade-offs and what you would do next.",
    },
]
PHASE_KEYS = [phase["key"] for phase in PHASES]
MOCK_MINUTES = sum(phase["minutes"] for phase in PHASES)
# The interviewer's curveballs come when this phase starts, as in a real round, not from minute 0.
CURVEBALL_PHASE = "failure_modes"


def phase_offset_s(key: str) -> int:
    """Seconds from the start of a mock interview to the start of phase `key`."""
    minutes = 0
    for phase in PHASES:
        if phase["key"] == key:
            return minutes * 60
        minutes += phase["minutes"]
    raise KeyError(key)


CURVEBALLS_AT_S = phase_offset_s(CURVEBALL_PHASE)


def curveball_offsets_s(budget_s: int, count: int) -> list[int]:
    """When each of `count` curveballs interrupts, in seconds into their phase: spread evenly through it
    (a 10-minute phase with four: 2, 4, 6 and 8 minutes in), so each one cuts into an answer in progress
    and the last still leaves time to answer it. Whole minutes where the phase allows, as an interviewer would."""
    step = budget_s / (count + 1)
    return [int(round((n + 1) * step / 60) * 60 if step >= 60 else round((n + 1) * step)) for n in range(count)]


# Shorter rounds keep the five phases, each shorter (minutes per phase, in PHASES order).
FORMATS = {45: [5, 5, 10, 15, 10], 35: [4, 4, 8, 11, 8], 20: [2, 2, 5, 6, 5]}
assert all(sum(minutes) == length for length, minutes in FORMATS.items())


class MockInterview(VisitorOwned):
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="mock_interviews")
    started_at = models.DateTimeField(default=timezone.now)
    notes = models.JSONField(default=dict, help_text="{phase key: notes}")
    finished_at = models.DateTimeField(null=True, blank=True)
    self_assessment = models.JSONField(default=list, help_text="indexes of key points the learner covered")
    minutes = models.PositiveSmallIntegerField(default=MOCK_MINUTES, choices=[(m, f"{m} minutes") for m in FORMATS])
    paused_at = models.DateTimeField(null=True, blank=True, help_text="the clock stands still while set")
    curveball_log = models.JSONField(
        default=dict,
        blank=True,
        help_text="{curveball key: {arrived_s, arrived_at, acknowledged_s?, acknowledged_at?}}: when each interrupted",
    )
    sketches = models.JSONField(default=dict, blank=True, help_text="{phase key: canvas sketch (topics.drills.canvas)}")

    objects = VisitorOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"mock {self.pk}: {self.question.slug}"

    def get_absolute_url(self) -> str:
        return reverse("drills:mock_detail", args=[self.pk])

    def phases(self) -> list[dict]:
        offset = 0
        out = []
        for phase, minutes in zip(PHASES, FORMATS.get(self.minutes, FORMATS[MOCK_MINUTES]), strict=True):
            notes = self.notes.get(phase["key"], "")
            out.append({**phase, "minutes": minutes, "offset_s": offset * 60, "budget_s": minutes * 60, "notes": notes})
            offset += minutes
        return out

    def curveballs_at_s(self) -> int:
        return next(phase["offset_s"] for phase in self.phases() if phase["key"] == CURVEBALL_PHASE)

    def elapsed_s(self, now: datetime | None = None) -> int:
        moment = self.paused_at or now or timezone.now()
        return max(0, int((moment - self.started_at).total_seconds()))

    def clock(self, action: str, now: datetime | None = None) -> None:
        """Pause, resume, or jump to the start of the next phase (moving the start, so elapsed time is one fact)."""
        now = now or timezone.now()
        if self.finished_at is not None:
            return
        if action == "pause" and self.paused_at is None:
            self.paused_at = now
        elif action == "resume" and self.paused_at is not None:
            self.started_at += now - self.paused_at
            self.paused_at = None
        elif action == "next":
            elapsed = self.elapsed_s(now)
            later = [phase["offset_s"] for phase in self.phases() if phase["offset_s"] > elapsed]
            if later:
                self.started_at = (self.paused_at or now) - timedelta(seconds=later[0])
        self.save(update_fields=["started_at", "paused_at"])

    def curveball_schedule_s(self, count: int) -> list[int]:
        """Seconds from the start at which each of `count` curveballs interrupts (see curveball_offsets_s)."""
        phase = next(phase for phase in self.phases() if phase["key"] == CURVEBALL_PHASE)
        return [phase["offset_s"] + offset for offset in curveball_offsets_s(phase["budget_s"], count)]

    def curveballs_arrive(self, keys: list[str], now: datetime | None = None) -> list[str]:
        """Record the first time each due curveball was shown; returns the keys that arrived just now."""
        now = now or timezone.now()
        if self.finished_at is not None:
            return []
        elapsed = self.elapsed_s(now)
        due = [key for key, at_s in zip(keys, self.curveball_schedule_s(len(keys)), strict=True) if elapsed >= at_s]
        if all(key in (self.curveball_log or {}) for key in due):
            return []
        with transaction.atomic():
            log = MockInterview.objects.select_for_update().get(pk=self.pk).curveball_log or {}
            arrived = [key for key in due if key not in log]
            for key in arrived:
                log[key] = {"arrived_s": elapsed, "arrived_at": now.isoformat()}
            self.curveball_log = log
            self.save(update_fields=["curveball_log"])
        return arrived

    def curveball_acknowledge(self, key: str, now: datetime | None = None) -> bool:
        """The learner answered the interruption ("Got it" or their first words): recorded once, when it has arrived."""
        now = now or timezone.now()
        with transaction.atomic():
            log = MockInterview.objects.select_for_update().get(pk=self.pk).curveball_log or {}
            entry = log.get(key)
            if entry is None or "acknowledged_s" in entry:
                self.curveball_log = log
                return False
            entry.update(acknowledged_s=self.elapsed_s(now), acknowledged_at=now.isoformat())
            self.curveball_log = log
            self.save(update_fields=["curveball_log"])
        return True

    def save_sketch(self, phase: str, sketch: dict) -> None:
        with transaction.atomic():
            current = MockInterview.objects.select_for_update().get(pk=self.pk).sketches or {}
            self.sketches = {**current, phase: sketch}
            self.save(update_fields=["sketches"])

    def save_notes(self, phase: str, text: str) -> None:
        # Update one phase without clobbering another phase's autosave that landed in between.
        with transaction.atomic():
            current = MockInterview.objects.select_for_update().get(pk=self.pk).notes or {}
            self.notes = {**current, phase: text}
            self.save(update_fields=["notes"])

    def finish(self, ticked: list[int]) -> None:
        self.self_assessment = sorted(set(ticked))
        self.finished_at = self.finished_at or timezone.now()
        self.save(update_fields=["self_assessment", "finished_at"])
