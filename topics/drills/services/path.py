"""The learner's path: a day-by-day plan to the interview date, and one "Continue" to the next step.

Chapters not yet understood are spread over the study days left, by reading minutes; the last days are
review only and the last one ends with a mock interview. The plan is rebuilt on every view from what the
learner has done, so falling behind or getting ahead moves the remaining work, never the deadline.
"""

import math
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.urls import reverse
from django.utils import timezone

from prepsite.links import lab_link
from prepsite.visitor import Visitor
from topics.drills.models import Card, LearnerPlan
from topics.drills.services.attempts import new_per_day
from topics.models import Question, ReadingPosition, Section, SectionUnderstood

MAX_DAYS_OUT = 365
MOCK_DAY_MINUTES = 35
# Levels in the order new drills come, per target level: the target first, then the harder, then the easier.
LEVEL_ORDER = {
    Question.Level.STAFF: [Question.Level.STAFF, Question.Level.SENIOR, Question.Level.JUNIOR],
    Question.Level.SENIOR: [Question.Level.SENIOR, Question.Level.STAFF, Question.Level.JUNIOR],
    Question.Level.JUNIOR: [Question.Level.JUNIOR, Question.Level.SENIOR, Question.Level.STAFF],
}


def learner_plan(learner: Visitor | None) -> LearnerPlan | None:
    return LearnerPlan.objects.owned_by(learner).first() if learner is not None else None


def local_today(plan: LearnerPlan | None, now: datetime | None = None) -> date:
    now = now or timezone.now()
    zone = zoneinfo.ZoneInfo(plan.time_zone) if plan is not None else timezone.get_current_timezone()
    return now.astimezone(zone).date()


def plan_save(*, learner: Visitor, interview_date: date, level: str, hide_junior: bool, time_zone: str) -> LearnerPlan:
    """Create or change the learner's plan; day 1 is the day it was first made (changing it keeps the start)."""
    with transaction.atomic():
        plan = LearnerPlan.objects.owned_by(learner).select_for_update().first()
        if plan is None:
            plan = LearnerPlan(**learner.owner(), time_zone=time_zone, interview_date=interview_date)
            plan.started_on = local_today(plan)
        plan.interview_date, plan.level, plan.hide_junior, plan.time_zone = (
            interview_date,
            level,
            hide_junior,
            time_zone,
        )
        plan.updated_at = timezone.now()
        if plan.started_on > local_today(plan):
            plan.started_on = local_today(plan)
        plan.save()
    return plan


def plan_claim(*, source: Visitor, target: Visitor) -> None:
    """At log-in the newer of the anonymous and the account's plan is kept."""
    mine = LearnerPlan.objects.owned_by(source).first()
    if mine is None:
        return
    theirs = LearnerPlan.objects.owned_by(target).first()
    if theirs is not None and theirs.updated_at >= mine.updated_at:
        mine.delete()
        return
    if theirs is not None:
        theirs.delete()
    LearnerPlan.objects.filter(pk=mine.pk).update(**target.owner())


def questions_for_level(questions: QuerySet, plan: LearnerPlan | None) -> QuerySet:
    """New questions in the plan's level order (staff first for a staff candidate), junior left out on request."""
    if plan is None:
        return questions.order_by("section__order", "level", "order", "slug")
    if plan.hide_junior:
        questions = questions.exclude(level=Question.Level.JUNIOR)
    rank = Case(
        *(When(level=level, then=Value(i)) for i, level in enumerate(LEVEL_ORDER[plan.level])),
        output_field=IntegerField(),
    )
    return questions.annotate(level_rank=rank).order_by("level_rank", "section__order", "order", "slug")


@dataclass
class PlannedChapter:
    section: Section
    minutes: int
    done: bool
    url: str  # at the heading where the learner left it, if they started it


@dataclass
class PlanDay:
    number: int
    day: date
    chapters: list[PlannedChapter] = field(default_factory=list)
    new_drills: int = 0
    preset: str = ""
    review_only: bool = False
    mock: bool = False

    @property
    def minutes(self) -> int:
        return sum(chapter.minutes for chapter in self.chapters)

    @property
    def lab_url(self) -> str:
        return lab_link(self.preset) if self.preset else ""


@dataclass
class LearnerPath:
    plan: LearnerPlan
    today: date
    days: list[PlanDay]
    total_days: int

    @property
    def today_number(self) -> int:
        return min(max(1, (self.today - self.plan.started_on).days + 1), self.total_days)

    @property
    def days_left(self) -> int:
        return (self.plan.interview_date - self.today).days

    @property
    def today_plan(self) -> PlanDay | None:
        return next((day for day in self.days if day.day == self.today), None)


def review_days(total_days: int) -> int:
    return 0 if total_days < 3 else 1 if total_days < 7 else 2


def chapter_url(section: Section, positions: dict[int, ReadingPosition]) -> str:
    position = positions.get(section.pk)
    return position.get_absolute_url() if position is not None else section.get_absolute_url()


def learner_path(*, learner: Visitor | None, now: datetime | None = None) -> LearnerPath | None:
    plan = learner_plan(learner)
    if plan is None:
        return None
    now = now or timezone.now()
    today = local_today(plan, now)
    total_days = max(1, (plan.interview_date - plan.started_on).days)
    days_from_today = max(1, (plan.interview_date - today).days)
    reviews = min(review_days(total_days), days_from_today - 1)
    study_days = max(1, days_from_today - reviews)
    sections = list(
        Section.objects.in_order().select_related("topic").only("pk", "slug", "title", "body_text", "topic__slug")
    )
    marks = dict(SectionUnderstood.objects.owned_by(learner).values_list("section_id", "created"))
    start_of_day = datetime.combine(today, datetime.min.time(), tzinfo=zoneinfo.ZoneInfo(plan.time_zone))
    positions = {p.section_id: p for p in ReadingPosition.objects.owned_by(learner).select_related("section__topic")}
    done_today = [s for s in sections if s.pk in marks and marks[s.pk] >= start_of_day]
    remaining = [s for s in sections if s.pk not in marks]
    presets = list(
        dict.fromkeys(
            Question.objects.exclude(preset="").order_by("section__order", "order").values_list("preset", flat=True)
        )
    )
    presets_by_section: dict[int, str] = {}
    for section_id, preset in Question.objects.exclude(preset="").order_by("order").values_list("section_id", "preset"):
        presets_by_section.setdefault(section_id, preset)
    unseen = questions_for_level(
        Question.objects.exclude(pk__in=Card.objects.owned_by(learner).values("question_id")), plan
    )
    drills_per_day = min(new_per_day(), math.ceil(unseen.count() / study_days))

    budget = math.ceil(sum(s.reading_minutes for s in remaining) / study_days) if remaining else 0
    days: list[PlanDay] = []
    queue = list(remaining)
    for offset in range(days_from_today):
        day = PlanDay(number=(today - plan.started_on).days + 1 + offset, day=today + timedelta(days=offset))
        if offset >= study_days:
            day.review_only = True
            day.mock = offset == days_from_today - 1
        else:
            if offset == 0:
                day.chapters = [PlannedChapter(s, s.reading_minutes, True, s.get_absolute_url()) for s in done_today]
            while queue and (
                not day.chapters or day.minutes + queue[0].reading_minutes <= budget or offset == study_days - 1
            ):
                section = queue.pop(0)
                day.chapters.append(
                    PlannedChapter(section, section.reading_minutes, False, chapter_url(section, positions))
                )
            day.new_drills = drills_per_day
            chapter_presets = [
                presets_by_section[c.section.pk] for c in day.chapters if c.section.pk in presets_by_section
            ]
            day.preset = (
                chapter_presets[0] if chapter_presets else (presets[day.number % len(presets)] if presets else "")
            )
        days.append(day)
    return LearnerPath(plan=plan, today=today, days=days, total_days=total_days)


@dataclass
class NextStep:
    url: str
    label: str
    detail: str


def continue_step(*, learner: Visitor | None, path: LearnerPath | None, first_drill: Question | None) -> NextStep:
    """The single next thing: the chapter left half-read (at its heading), today's chapter, a due or new
    drill, today's experiment, else a mock interview."""
    positions = ReadingPosition.objects.owned_by(learner).select_related("section__topic").order_by("-updated_at")
    understood = set(SectionUnderstood.objects.owned_by(learner).values_list("section_id", flat=True))
    started = next((p for p in positions if p.section_id not in understood), None)
    if started is not None:
        where = started.section.heading_title(started.heading) if started.heading else ""
        detail = f"{started.section.title}" + (f" — at “{where}”" if where else "")
        return NextStep(started.get_absolute_url(), "Continue reading", detail)
    today = path.today_plan if path is not None else None
    if today is not None:
        chapter = next((c for c in today.chapters if not c.done), None)
        if chapter is not None:
            return NextStep(
                chapter.url, "Continue: today's chapter", f"{chapter.section.title} · {chapter.minutes} min"
            )
    elif path is None:
        section = Section.objects.in_order().exclude(pk__in=understood).select_related("topic").first()
        if section is not None and not understood:
            return NextStep(section.get_absolute_url(), "Start reading", section.title)
    if first_drill is not None:
        return NextStep(first_drill.get_absolute_url(), "Continue: today's drills", first_drill.prompt)
    if today is not None and today.preset:
        return NextStep(today.lab_url, "Continue: today's experiment", f"Lab preset “{today.preset}”")
    return NextStep(reverse("drills:mock_start"), "Continue: a mock interview", "Everything for today is done.")
