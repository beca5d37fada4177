from django import forms
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from prepsite.shared_pages import shared_page
from topics import search as site_search
from topics.models import ANONYMOUS_MARKS_KEY, Question, Section, SectionUnderstood, Topic

# The queueing architecture diagram: node -> anchors on the topic page, most specific first.
# The first anchor that exists on the page wins, so a renamed heading degrades to its section.
DIAGRAM_TARGETS = {
    "client": ["what-the-client-sees", "overview"],
    "gateway": ["hop-1-client-to-gateway", "data-and-request-flow"],
    "service": ["hop-2-gateway-to-service", "data-and-request-flow"],
    "cache": ["hop-3-service-to-database-and-cache", "data-and-request-flow"],
    "db": ["source-of-truth-and-derived-state", "data-and-request-flow"],
    "queue": ["hop-4-service-to-queue", "core-concepts"],
    "workers": ["hop-5-queue-to-workers", "internal-architecture"],
    "dlq": ["dead-letter-queues", "scalability-and-reliability"],
}


def _visitor(request: HttpRequest) -> dict:
    return {"user": request.user, "session_key": request.session.session_key}


def _understood_ids(request: HttpRequest, topic: Topic) -> set[int]:
    marks = SectionUnderstood.objects.for_visitor(**_visitor(request)).filter(section__topic=topic)
    return set(marks.values_list("section_id", flat=True))


def _diagram(topic: Topic, sections: list[Section]) -> dict[str, str] | None:
    if topic.slug != "queueing":
        return None
    anchors = {section.slug for section in sections} | {e["id"] for s in sections for e in s.toc}
    targets = {}
    for node, candidates in DIAGRAM_TARGETS.items():
        found = next((anchor for anchor in candidates if anchor in anchors), None)
        targets[node] = f"#{found}" if found else ""
    return targets


@require_GET
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


@require_GET
def topic_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The same document for every visitor (cached); `topic_personal` fills in their marks."""

    def context() -> dict:
        topic = get_object_or_404(Topic, slug=slug)
        sections = _topic_sections(topic)
        return {
            "topic": topic,
            "sections": sections,
            "section_count": len(sections),
            "diagram": _diagram(topic, sections),
            "nav": "study",
        }

    return shared_page(request, f"topic:{slug}", "topics/topic_detail.html", context)


@require_GET
@never_cache
def topic_personal(request: HttpRequest, slug: str) -> HttpResponse:
    """The visitor's own bits of the topic page, as out-of-band swaps: marks, progress, nav."""
    topic = get_object_or_404(Topic, slug=slug)
    context = _progress_context(request, topic, _section_titles(topic)) | {"oob": True}
    return render(request, "topics/topic_detail.html#personal", context)


@require_GET
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
    if not request.user.is_authenticated:
        # Anonymous marks are keyed to the (database-backed) session; writing to it also
        # replaces a stale cookie's key with a live one before we use it.
        request.session[ANONYMOUS_MARKS_KEY] = ""
        if request.session.session_key is None:
            request.session.save()
        request.session[ANONYMOUS_MARKS_KEY] = request.session.session_key
    SectionUnderstood.objects.set(section, understood=form.cleaned_data["understood"], **_visitor(request))
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


@require_GET
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
