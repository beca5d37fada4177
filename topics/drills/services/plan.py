"""The day's drill plan: due cards first, then new questions up to the daily limit."""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from prepsite.visitor import Visitor
from topics.drills.models import Card
from topics.drills.services.attempts import new_per_day, start_of_today
from topics.drills.services.path import learner_plan, questions_for_level
from topics.models import Question


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


def drill_plan(*, learner: Visitor | None, now: datetime | None = None, topic=None, section=None) -> DrillPlan:
    """What to practise now: due reviews first (most overdue first), then new questions up to the daily limit."""
    now = now or timezone.now()
    limit = new_per_day()
    cards = (
        Card.objects.owned_by(learner)
        .select_related("question", "question__topic", "question__section")
        .defer(*(f"question__{name}" for name in HEAVY_FIELDS), "question__topic__intro_md", "question__topic__intro_html",
               "question__topic__diagram_html")
    )  # fmt: skip
    if topic is not None:
        cards = cards.filter(question__topic=topic)
    if section is not None:  # a session on one chapter: its due questions, then its new ones
        cards = cards.filter(question__section=section)
    due = list(cards.due(now).order_by("due"))
    introduced = Card.objects.owned_by(learner).introduced_since(start_of_today(now)).count()
    left = max(0, limit - introduced)
    # New material at the learner's level first (their plan), else in reading order, junior first.
    questions = questions_for_level(
        Question.objects.select_related("topic", "section").defer(
            *HEAVY_FIELDS, "topic__intro_md", "topic__intro_html", "topic__diagram_html"
        ),
        learner_plan(learner),
    )
    if topic is not None:
        questions = questions.filter(topic=topic)
    if section is not None:
        questions = questions.filter(section=section)
    seen = Card.objects.owned_by(learner).values("question_id")
    new = list(questions.exclude(pk__in=seen)[:left]) if left else []
    return DrillPlan(due=due, new=new, new_left_today=left, limit=limit)


def due_count(learner: Visitor | None, now: datetime | None = None) -> int:
    if learner is None:
        return 0
    return Card.objects.owned_by(learner).due(now).count()


# Progress ---------------------------------------------------------------------------------------
