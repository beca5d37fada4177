from django import forms
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from prepsite.shared_pages import shared_page
from prepsite.visitor import visitor_for
from topics import search as site_search
from topics.models import Question, Section, SectionUnderstood, Topic


def _understood_ids(request: HttpRequest, topic: Topic) -> set[int]:
    marks = SectionUnderstood.objects.for_visitor(visitor_for(request)).filter(section__topic=topic)
    return set(marks.values_list("section_id", flat=True))


@require_safe
def topic_list(request: HttpRequest) -> HttpResponse:
    topics = Topic.objects.published().annotate(
        section_count=Count("sections", distinct=True), question_count=Count("questions", distinct=True)
    )
    return render(request, "topics/topic_list.html", {"topics": topics, "nav": "study"})


def _topic_sections(topic: Topic) -> list[Section]:
    questions = Prefetch("questions", queryset=Question.objects.select_related("topic"))
    return list(topic.sections.in_order().prefetch_related(questions))


def _section_titles(topic: Topic) -> list[Section]:
    return list(topic.sections.in_order().only("pk", "slug", "title", "topic_id"))


def _progress_context(request: HttpRequest, topic: Topic, sections: list[Section]) -> dict:
    understood = _understood_ids(request, topic)
    return {
        "topic": topic,
        "sections": sections,
        "understood": understood,
        "understood_count": sum(1 for s in sections if s.pk in understood),
        "section_count": len(sections),
    }


@require_safe
def topic_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The same document for every visitor (cached); `topic_personal` fills in their marks."""

    def context() -> dict:
        topic = get_object_or_404(Topic, slug=slug)
        sections = _topic_sections(topic)
        return {
            "topic": topic,
            "sections": sections,
            "section_count": len(sections),
            "nav": "study",
        }

    return shared_page(request, f"topic:{slug}", "topics/topic_detail.html", context)


@require_safe
@never_cache
def topic_personal(request: HttpRequest, slug: str) -> HttpResponse:
    """The visitor's own bits of the topic page, as out-of-band swaps: marks, progress, nav."""
    topic = get_object_or_404(Topic, slug=slug)
    context = _progress_context(request, topic, _section_titles(topic)) | {"oob": True}
    return render(request, "topics/topic_detail.html#personal", context)


@require_safe
def checklist(request: HttpRequest, slug: str) -> HttpResponse:
    """Marking sections without JavaScript: the topic page links here from its <noscript> parts."""
    topic = get_object_or_404(Topic, slug=slug)
    context = _progress_context(request, topic, _section_titles(topic)) | {"nav": "study"}
    return render(request, "topics/checklist.html", context)


class UnderstoodForm(forms.Form):
    understood = forms.TypedChoiceField(choices=[("1", "yes"), ("0", "no")], coerce=lambda v: v == "1")


@require_POST
def mark_understood(request: HttpRequest, slug: str, section_slug: str) -> HttpResponse:
    section = get_object_or_404(Section.objects.select_related("topic"), topic__slug=slug, slug=section_slug)
    form = UnderstoodForm(request.POST)
    if not form.is_valid():
        raise Http404("unknown action")
    visitor = visitor_for(request, create=True)
    SectionUnderstood.objects.set(section, understood=form.cleaned_data["understood"], visitor=visitor)
    if not request.htmx:
        # Only visitors without JavaScript post the plain form; the checklist is where they see marks.
        return redirect(f"{reverse('topics:checklist', args=[section.topic.slug])}#{section.slug}")
    topic = section.topic
    understood = _understood_ids(request, topic)
    context = {
        "topic": topic,
        "section": section,
        "understood": understood,
        "understood_count": len(understood),
        "section_count": topic.sections.count(),
        "oob": True,
    }
    return render(request, "topics/topic_detail.html#understood", context)


@require_safe
def search(request: HttpRequest) -> HttpResponse:
    query = site_search.clean_query(request.GET.get("q"))
    results = site_search.search(query) if query else []
    context = {
        "query": query,
        "results": results,
        "has_terms": bool(site_search.query_terms(query)),
        "topics": Topic.objects.published(),
        "nav": "search",
    }
    return render(request, "topics/search.html", context)
