from django import forms
from django.core.cache import caches
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from prepsite.shared_pages import shared_page
from prepsite.visitor import visitor_for
from topics import search as site_search
from topics import text
from topics.models import HeadingUnderstood, Question, ReadingPosition, Section, SectionUnderstood, Topic


def _understood_ids(request: HttpRequest, topic_id: int) -> set[int]:
    visitor = visitor_for(request)
    if visitor is None:
        return set()  # no session id yet, so nothing marked: skip the query
    marks = SectionUnderstood.objects.owned_by(visitor).filter(section__topic_id=topic_id)
    return set(marks.values_list("section_id", flat=True))


@require_safe
def topic_list(request: HttpRequest) -> HttpResponse:
    """Every topic; with only one, Study is that topic's chapter list, so go straight there."""
    only = list(Topic.objects.published()[:2])
    if len(only) == 1:
        return redirect(only[0])
    topics = Topic.objects.published().annotate(
        section_count=Count("sections", distinct=True), question_count=Count("questions", distinct=True)
    )
    return render(request, "topics/topic_list.html", {"topics": topics, "nav": "study"})


def _section_titles(topic: Topic) -> list[Section]:
    return list(topic.sections.in_order().only("pk", "slug", "title", "topic_id"))


def _chapters(slug: str) -> tuple[Topic, list[Section]] | None:
    """The topic and its chapters' ids, slugs and titles, from the shared pages' cache (a load clears it):
    the personal fragments then cost no query for an anonymous visitor and one for anyone else."""
    cache = caches["pages"]
    key = f"chapters:{slug}"
    rows = cache.get(key)
    if rows is None:
        topic = Topic.objects.filter(slug=slug).only("pk", "slug").first()
        if topic is None:
            return None
        rows = (topic.pk, [(s.pk, s.slug, s.title) for s in _section_titles(topic)])
        cache.set(key, rows, 60)
    topic = Topic(pk=rows[0], slug=slug)
    return topic, [Section(pk=pk, slug=s, title=title, topic=topic) for pk, s, title in rows[1]]


def _progress_context(request: HttpRequest, topic: Topic, sections: list[Section]) -> dict:
    understood = _understood_ids(request, topic.pk)
    return {
        "topic": topic,
        "sections": sections,
        "understood": understood,
        "understood_count": sum(1 for s in sections if s.pk in understood),
        "section_count": len(sections),
    }


@require_safe
def topic_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The overview, the same document for every visitor (cached); `topic_personal` fills in their marks."""

    def context() -> dict:
        topic = get_object_or_404(Topic, slug=slug)
        sections = list(topic.sections.in_order().defer("body_md", "body_html"))
        return {"topic": topic, "sections": sections, "section_count": len(sections), "nav": "study"}

    return shared_page(request, f"topic:{slug}", "topics/topic_detail.html", context)


@require_safe
@never_cache
def topic_personal(request: HttpRequest, slug: str) -> HttpResponse:
    """The visitor's own bits of the overview, as out-of-band swaps: progress, contents marks, nav."""
    chapters = _chapters(slug)
    if chapters is None:
        raise Http404("no such topic")
    context = _progress_context(request, *chapters) | {"oob": True}
    return render(request, "topics/topic_detail.html#personal", context)


@require_safe
def section_detail(request: HttpRequest, slug: str, section_slug: str) -> HttpResponse:
    """One chapter, the same document for every visitor (cached); `section_personal` fills in their marks."""

    def context() -> dict:
        topic = get_object_or_404(Topic, slug=slug)
        sections = _section_titles(topic)
        position = next((i for i, s in enumerate(sections) if s.slug == section_slug), None)
        if position is None:
            raise Http404("no such chapter")
        questions = Prefetch("questions", queryset=Question.objects.in_order().select_related("topic"))
        section = topic.sections.prefetch_related(questions).get(pk=sections[position].pk)
        return {
            "topic": topic,
            "section": section,
            "sections": sections,
            "number": position + 1,
            "previous": sections[position - 1] if position else None,
            "next": sections[position + 1] if position + 1 < len(sections) else None,
            "section_count": len(sections),
            "nav": "study",
        }

    return shared_page(request, f"chapter:{slug}:{section_slug}", "topics/section_detail.html", context)


def _parts_context(request: HttpRequest, section: Section) -> dict:
    """The chapter's sections with the visitor's marks, and how many of them are understood."""
    parts = Section.objects.only("pk", "toc").get(pk=section.pk).parts
    visitor = visitor_for(request)
    marked = set()
    if visitor is not None:
        marks = HeadingUnderstood.objects.owned_by(visitor).filter(section_id=section.pk)
        marked = set(marks.values_list("heading", flat=True))
    return {
        "parts": parts,
        "parts_understood": {part["id"] for part in parts} & marked,
        "parts_count": len(parts),
    }


@require_safe
@never_cache
def section_personal(request: HttpRequest, slug: str, section_slug: str) -> HttpResponse:
    """The visitor's own bits of a chapter page: its understood control, progress, contents marks, nav."""
    chapters = _chapters(slug)
    if chapters is None:
        raise Http404("no such topic")
    topic, sections = chapters
    section = next((s for s in sections if s.slug == section_slug), None)
    if section is None:
        raise Http404("no such chapter")
    context = _progress_context(request, topic, sections) | {"section": section, "oob": True}
    return render(request, "topics/section_detail.html#personal", context | _parts_context(request, section))


@require_safe
def checklist(request: HttpRequest, slug: str) -> HttpResponse:
    """Marking sections without JavaScript: the shared pages link here from their <noscript> parts."""
    topic = get_object_or_404(Topic, slug=slug)
    context = _progress_context(request, topic, _section_titles(topic)) | {"nav": "study", "back": "checklist"}
    return render(request, "topics/checklist.html", context)


class UnderstoodForm(forms.Form):
    understood = forms.TypedChoiceField(choices=[("1", "yes"), ("0", "no")], coerce=lambda v: v == "1")
    # Where a plain (no-htmx) post returns to: the chapter by default, or the checklist it came from.
    back = forms.ChoiceField(choices=[("chapter", "chapter"), ("checklist", "checklist")], required=False)


@require_POST
def mark_understood(request: HttpRequest, slug: str, section_slug: str) -> HttpResponse:
    section = get_object_or_404(Section.objects.select_related("topic"), topic__slug=slug, slug=section_slug)
    form = UnderstoodForm(request.POST)
    if not form.is_valid():
        raise Http404("unknown action")
    visitor = visitor_for(request, create=True)
    SectionUnderstood.objects.set(section, understood=form.cleaned_data["understood"], visitor=visitor)
    if not request.htmx:
        if form.cleaned_data["back"] == "checklist":
            return redirect(f"{reverse('topics:checklist', args=[slug])}#{section.slug}")
        return redirect(f"{section.get_absolute_url()}#understood-{section.slug}")
    topic = section.topic
    understood = _understood_ids(request, topic.pk)
    context = {
        "topic": topic,
        "section": section,
        "understood": understood,
        "understood_count": len(understood),
        "section_count": topic.sections.count(),
        "back": form.cleaned_data["back"],
        "oob": True,
    }
    return render(request, "topics/topic_detail.html#understood", context)


class HeadingUnderstoodForm(forms.Form):
    heading = forms.CharField(max_length=100)
    understood = forms.TypedChoiceField(choices=[("1", "yes"), ("0", "no")], coerce=lambda v: v == "1")


@require_POST
def mark_heading(request: HttpRequest, slug: str, section_slug: str) -> HttpResponse:
    """Mark one section of a chapter (a ### heading) understood or not; the chapter's count follows."""
    section = get_object_or_404(Section.objects.select_related("topic"), topic__slug=slug, slug=section_slug)
    form = HeadingUnderstoodForm(request.POST)
    known = {part["id"] for part in section.parts}
    if not form.is_valid() or form.cleaned_data["heading"] not in known:
        return HttpResponse("Unknown section for this chapter.", status=400, content_type="text/plain")
    heading = form.cleaned_data["heading"]
    HeadingUnderstood.objects.set(
        section, heading=heading, understood=form.cleaned_data["understood"], visitor=visitor_for(request, create=True)
    )
    if not request.htmx:
        return redirect(f"{section.get_absolute_url()}#{heading}")
    context = {"topic": section.topic, "section": section, "oob": True} | _parts_context(request, section)
    return render(request, "topics/section_detail.html#parts", context)


class PositionForm(forms.Form):
    heading = forms.CharField(max_length=100)


@require_POST
def save_position(request: HttpRequest, slug: str, section_slug: str) -> HttpResponse:
    """Remember the last heading read in a chapter (study.js posts it while the reader scrolls)."""
    section = get_object_or_404(Section.objects.only("pk", "toc"), topic__slug=slug, slug=section_slug)
    form = PositionForm(request.POST)
    if not form.is_valid() or not section.heading_title(form.cleaned_data["heading"]):
        return HttpResponse("Unknown heading for this chapter.", status=400, content_type="text/plain")
    ReadingPosition.objects.record(
        section, heading=form.cleaned_data["heading"], visitor=visitor_for(request, create=True)
    )
    return HttpResponse(status=204)


@require_safe
def search(request: HttpRequest) -> HttpResponse:
    query = text.clean_query(request.GET.get("q"))
    results = site_search.search(query) if query else []
    context = {
        "query": query,
        "results": results,
        "has_terms": bool(text.query_terms(query)),
        "topics": Topic.objects.published(),
        "nav": "search",
    }
    return render(request, "topics/search.html", context)
