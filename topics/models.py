"""Study content (topics, sections, drill questions) and per-visitor reading progress."""

import math

from django.db import models, transaction
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from prepsite.ownership import VisitorOwned, VisitorOwnedQuerySet
from prepsite.visitor import Visitor, anonymous_visitor_claimed


class TopicQuerySet(models.QuerySet):
    def published(self) -> "TopicQuerySet":
        return self.order_by("order", "title")


class Topic(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    intro_md = models.TextField(blank=True)
    intro_html = models.TextField(blank=True)
    diagram_html = models.TextField(blank=True, help_text="the topic's optional diagram.html, links resolved")
    curveballs = models.JSONField(default=list, blank=True, help_text="[{text, preset, label, also?}]")
    order = models.PositiveIntegerField(default=0)
    content_version = models.CharField(
        max_length=40, blank=True, help_text="digest of everything loaded for the topic; in-process caches key on it"
    )

    objects = TopicQuerySet.as_manager()

    class Meta:
        ordering = ["order", "title"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("topics:topic_detail", args=[self.slug])


WORDS_PER_MINUTE = 220  # a technical text read carefully
SECTION_HEADING_LEVEL = 3  # a chapter's sections are its ### headings (the chapter title is the page's h1)
# Path segments under /topics/<topic>/ that are not chapters (our routes and the Drills app's).
RESERVED_SECTION_SLUGS = frozenset({"drill", "drill-status", "personal", "checklist", "sections"})


class SectionQuerySet(models.QuerySet):
    def in_order(self) -> "SectionQuerySet":
        return self.order_by("order", "pk")


class Section(models.Model):
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="sections")
    slug = models.SlugField(max_length=100)
    title = models.CharField(max_length=200)
    order = models.PositiveIntegerField(default=0)
    body_md = models.TextField(blank=True)
    body_html = models.TextField(blank=True, help_text="Rendered at load time so page views do no Markdown work.")
    body_text = models.TextField(blank=True, help_text="Plain text of the body, for search.")
    toc = models.JSONField(default=list, blank=True, help_text="[{id, title, level}] of the body's headings.")
    blocks = models.JSONField(
        default=list, blank=True, help_text="[{id, heading, text}] of the body's paragraphs, list items and tables."
    )

    objects = SectionQuerySet.as_manager()

    class Meta:
        ordering = ["topic", "order", "pk"]
        constraints = [models.UniqueConstraint(fields=["topic", "slug"], name="unique_section_slug_per_topic")]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("topics:section", args=[self.topic.slug, self.slug])

    @property
    def reading_minutes(self) -> int:
        return max(1, math.ceil(len(self.body_text.split()) / WORDS_PER_MINUTE))

    @property
    def summary(self) -> str:
        """The chapter's opening paragraph, for the overview's contents (not its probe box, a quote)."""
        prose = (block for block in self.blocks if block.get("kind") not in ("figure", "link", "quote"))
        return next((block["text"] for block in prose), "")

    def heading_title(self, heading_id: str) -> str:
        return next((entry["title"] for entry in self.toc if entry["id"] == heading_id), "")

    @property
    def parts(self) -> list[dict]:
        """The chapter's sections: its top sub-headings (### in the Markdown), [{id, title, level}]."""
        return [entry for entry in self.toc if entry["level"] == SECTION_HEADING_LEVEL]


class QuestionQuerySet(models.QuerySet):
    def in_order(self) -> "QuestionQuerySet":
        return self.order_by("order", "slug")


class Question(models.Model):
    class Level(models.TextChoices):
        JUNIOR = "junior", "Junior"
        SENIOR = "senior", "Senior"
        STAFF = "staff", "Staff"

    class Kind(models.TextChoices):
        CONCEPT = "concept", "Concept question"
        DESIGN = "design", "Design prompt"

    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="questions")
    slug = models.SlugField(max_length=100)
    prompt = models.TextField()
    level = models.CharField(max_length=10, choices=Level.choices)
    kind = models.CharField(
        max_length=10,
        choices=Kind.choices,
        default=Kind.CONCEPT,
        help_text="design: a full system-design prompt whose model answer is phased like the mock interview",
    )
    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="questions")
    heading = models.CharField(
        max_length=100, blank=True, help_text="anchor of the heading in its section that the Study link lands on"
    )
    preset = models.CharField(max_length=50, blank=True)
    key_points = models.JSONField(default=list, help_text='[{"label": str, "phrases": [str]}]')
    followups = models.JSONField(default=list, help_text="[str]: the interviewer's first pushes (mock curveballs)")
    followup_tree = models.JSONField(
        default=list, blank=True, help_text='[{"ask", "answer_html", "then": [...]}]: each push with its model answer'
    )
    staff_html = models.TextField(blank=True, help_text="What a staff answer adds beyond the rubric")
    answer_md = models.TextField(blank=True)
    answer_html = models.TextField(blank=True)
    order = models.PositiveIntegerField(default=0)

    objects = QuestionQuerySet.as_manager()

    class Meta:
        ordering = ["topic", "order", "slug"]
        constraints = [models.UniqueConstraint(fields=["topic", "slug"], name="unique_question_slug_per_topic")]

    def __str__(self) -> str:
        return self.prompt

    def get_absolute_url(self) -> str:
        return reverse("drills:question", args=[self.topic.slug, self.slug])

    def study_url(self) -> str:
        """The heading of its chapter that explains it (the chapter's top when the question names none)."""
        url = self.section.get_absolute_url()
        return f"{url}#{self.heading}" if self.heading else url


class SectionUnderstoodQuerySet(VisitorOwnedQuerySet):
    def set(self, section: "Section", *, understood: bool, visitor: Visitor) -> None:
        """Record or clear the visitor's mark on a section (idempotent)."""
        if understood:
            self.get_or_create(section=section, **visitor.owner())
        else:
            self.owned_by(visitor).filter(section=section).delete()

    def claim(self, *, source: Visitor, target: Visitor) -> int:
        """Move an anonymous visitor's marks to the account they just logged in to."""
        with transaction.atomic():
            anonymous = self.owned_by(source)
            already = self.owned_by(target).values_list("section_id", flat=True)
            anonymous.filter(section_id__in=list(already)).delete()
            return anonymous.update(**target.owner())


class SectionUnderstood(VisitorOwned):
    """A visitor marked a section as understood: owned by a visitor (`prepsite.visitor`)."""

    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="understood_marks")
    created = models.DateTimeField(auto_now_add=True)

    objects = SectionUnderstoodQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["section", "user"], condition=models.Q(user__isnull=False), name="unique_understood_per_user"
            ),
            models.UniqueConstraint(
                fields=["section", "anon_id"],
                condition=models.Q(user__isnull=True),
                name="unique_understood_per_session",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.section} understood"


class ReadingPositionQuerySet(VisitorOwnedQuerySet):
    def record(self, section: "Section", *, heading: str, visitor: Visitor) -> None:
        """Remember the last heading the visitor read in a chapter (one row per chapter)."""
        updated = self.owned_by(visitor).filter(section=section).update(heading=heading, updated_at=timezone.now())
        if not updated:
            self.create(section=section, heading=heading, **visitor.owner())

    def claim(self, *, source: Visitor, target: Visitor) -> int:
        """Move an anonymous visitor's positions to their account; the newer of two for one chapter wins."""
        with transaction.atomic():
            moved = 0
            for position in self.owned_by(source):
                theirs = self.owned_by(target).filter(section_id=position.section_id).first()
                if theirs is not None and theirs.updated_at >= position.updated_at:
                    position.delete()
                    continue
                if theirs is not None:
                    theirs.delete()
                self.filter(pk=position.pk).update(**target.owner())
                moved += 1
            return moved


class ReadingPosition(VisitorOwned):
    """Where a visitor left a chapter: the id of the last heading they scrolled past, for "Continue"."""

    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="reading_positions")
    heading = models.CharField(max_length=100, blank=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ReadingPositionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["section", "user"], condition=models.Q(user__isnull=False), name="one_position_per_user"
            ),
            models.UniqueConstraint(
                fields=["section", "anon_id"], condition=models.Q(user__isnull=True), name="one_position_per_session"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.section} at #{self.heading}"

    def get_absolute_url(self) -> str:
        url = self.section.get_absolute_url()
        return f"{url}#{self.heading}" if self.heading else url


class HeadingUnderstoodQuerySet(VisitorOwnedQuerySet):
    def set(self, section: "Section", *, heading: str, understood: bool, visitor: Visitor) -> None:
        """Record or clear the visitor's mark on one section of a chapter (idempotent)."""
        if understood:
            self.get_or_create(section=section, heading=heading, **visitor.owner())
        else:
            self.owned_by(visitor).filter(section=section, heading=heading).delete()

    def claim(self, *, source: Visitor, target: Visitor) -> int:
        """Move an anonymous visitor's section marks to their account (a mark both hold is kept once)."""
        with transaction.atomic():
            anonymous = self.owned_by(source)
            for section_id, heading in self.owned_by(target).values_list("section_id", "heading"):
                anonymous.filter(section_id=section_id, heading=heading).delete()
            return anonymous.update(**target.owner())


class HeadingUnderstood(VisitorOwned):
    """A visitor marked one section of a chapter (a ### heading) as understood; the chapter shows how many."""

    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="heading_marks")
    heading = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)

    objects = HeadingUnderstoodQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["section", "heading", "user"],
                condition=models.Q(user__isnull=False),
                name="unique_heading_understood_per_user",
            ),
            models.UniqueConstraint(
                fields=["section", "heading", "anon_id"],
                condition=models.Q(user__isnull=True),
                name="unique_heading_understood_per_session",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.section} #{self.heading} understood"


@receiver(anonymous_visitor_claimed, dispatch_uid="topics_claim_anonymous_marks")
def claim_anonymous_marks(sender, source: Visitor, target: Visitor, **kwargs) -> None:
    SectionUnderstood.objects.claim(source=source, target=target)
    HeadingUnderstood.objects.claim(source=source, target=target)
    ReadingPosition.objects.claim(source=source, target=target)
