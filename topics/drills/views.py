"""Drill views: a few lines of HTTP glue each; the rules live in services/ and the models."""

from urllib.parse import urlencode

from django.contrib import messages
from django.core.cache import caches
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.http import push_url

from prepsite.charts import day_bars
from prepsite.links import lab_link
from prepsite.ratelimit import refused_request
from prepsite.shared_pages import shared_page
from prepsite.visitor import ADDRESS_CEILING_TIMES, SIGN_UP_INVITE, visitor_for
from topics.drills import scheduling, services
from topics.drills.forms import (
    AttemptForm,
    DrillFilterForm,
    ImportForm,
    RatingForm,
)
from topics.drills.matching import RULE as MATCH_RULE
from topics.drills.models import MOCK_MINUTES, Attempt, Card
from topics.drills.path_views import path_context
from topics.models import Question, Section, Topic


def page(request: HttpRequest, template: str, fragment: str, context: dict, status: int = 200) -> HttpResponse:
    """The whole page, or only its fragment when htmx asked (the view decides, never the client)."""
    name = f"{template}#{fragment}" if request.htmx else template
    return render(request, name, {"nav": "drills", **context}, status=status)


def get_question(topic: str, slug: str) -> Question:
    return get_object_or_404(Question.objects.select_related("topic", "section"), topic__slug=topic, slug=slug)


def section_url(question: Question) -> str:
    try:
        return question.study_url()
    except NoReverseMatch:  # the Study pages are optional for drilling
        return reverse("topics:topic_list")


def lab_url(question: Question) -> str:
    return lab_link(question.preset) if question.preset else ""


def question_context(question: Question, **extra) -> dict:
    return {
        "question": question,
        "topic": question.topic,
        "section_url": section_url(question),
        "lab_url": lab_url(question),
        **extra,
    }


# Why a matched point earned no credit, in the rubric row's words.
FLAG_WORDS = {"copied": "copied from the page", "list": "in a list, not a sentence", "formula": "needs the formula"}


def reveal_context(request: HttpRequest, attempt: Attempt, **extra) -> dict:
    """Everything the reveal shows: model answer, follow-ups, rubric with matches and ticks, outcome."""
    question = attempt.question
    assessment = services.attempt_assessment(attempt.answer, question, attempt.duration_ms)
    match = assessment.match
    review = attempt.review
    ticked = set(review.ticked) if review else set(attempt.matched)
    points = [
        {
            "index": point.index,
            "label": point.label,
            "phrases": point.phrases,
            "matched": point.index in assessment.credited,
            "denied": FLAG_WORDS.get(assessment.denied.get(point.index, ""), ""),
            "matched_words": point.matched_words,
            "ticked": point.index in ticked,
        }
        for point in match.points
    ]
    card = None
    next_due = ""
    next_url = reverse("drills:home")
    choices = []
    if review is not None:
        card = review.card
        next_due = scheduling.humanize_delta(card.due - timezone.now())
        upcoming = services.drill_plan(learner=visitor_for(request)).next_after(question)
        next_url = upcoming.get_absolute_url() if upcoming else next_url
    else:
        choices = services.attempt_rating_choices(attempt=attempt)
    return question_context(
        question,
        attempt=attempt,
        match=match,
        points=points,
        review=review,
        card=card,
        next_due=next_due,
        next_url=next_url,
        match_rule=MATCH_RULE,
        duration=scheduling.clock(attempt.duration_ms),
        choices=choices,
        assessment=assessment,
        suggested=assessment.suggested_rating if attempt.answer else 1,
        **extra,
    )


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    context = path_context(request)
    plan, chapter = context["drills"], None
    if request.GET.get("chapter"):  # "drill this chapter", from Progress: its due questions, then its new ones
        chapter = Section.objects.filter(slug=request.GET["chapter"]).select_related("topic").first()
        if chapter is None:
            return HttpResponse("No chapter by that name.", status=400, content_type="text/plain")
        plan = services.drill_plan(learner=visitor_for(request), section=chapter)
    return render(
        request,
        "drills/home.html",
        {**context, "nav": "drills", "plan": plan, "chapter": chapter, "mock_minutes": MOCK_MINUTES},
    )


def _drill_questions(topic: Topic) -> list[Question]:
    return list(topic.questions.select_related("section").defer(*services.HEAVY_FIELDS).in_order())


def _chapter_choices(topic: Topic) -> list[tuple[str, str]]:
    return list(topic.sections.in_order().values_list("slug", "title"))


@require_safe
def topic_drill(request: HttpRequest, topic: str) -> HttpResponse:
    """The same question table for every visitor (cached), filtered by level and chapter; `topic_drill_personal`
    fills in statuses. A status filter needs the visitor's cards, so that page is rendered for them alone."""
    topic_obj = get_object_or_404(Topic.objects.only("pk", "slug", "title"), slug=topic)
    filters = DrillFilterForm(request.GET, chapters=_chapter_choices(topic_obj))
    if not filters.is_valid():
        context = {"nav": "drills", "topic": topic_obj, "rows": [], "filters": filters}
        return render(request, "drills/topic_drill.html", context, status=400)
    level, chapter, status = (filters.cleaned_data[name] for name in ("level", "chapter", "status"))

    def questions() -> list[Question]:
        found = _drill_questions(topic_obj)
        return [q for q in found if (not level or q.level == level) and (not chapter or q.section.slug == chapter)]

    if status:
        rows, plan = _drill_statuses(topic_obj, visitor_for(request))
        wanted = {q.pk for q in questions()}
        by_pk = {q.pk: q for q in _drill_questions(topic_obj)}
        rows = [{**row, "question": by_pk[row["question"].pk]} for row in rows if row["question"].pk in wanted]
        rows = [row for row in rows if row["status"] == status]
        context = {"nav": "drills", "topic": topic_obj, "rows": rows, "plan": plan, "filters": filters, "mine": True}
        return render(request, "drills/topic_drill.html", context)

    def context() -> dict:
        rows = [{"question": q} for q in questions()]
        query = urlencode({name: value for name, value in (("level", level), ("chapter", chapter)) if value})
        return {"nav": "drills", "topic": topic_obj, "rows": rows, "filters": filters, "personal_query": query}

    return shared_page(request, f"drill:{topic}:{level}:{chapter}", "drills/topic_drill.html", context)


@require_safe
@never_cache
def topic_drill_personal(request: HttpRequest, topic: str) -> HttpResponse:
    """The learner's statuses, plan and nav for the drill page, as out-of-band swaps."""
    learner = visitor_for(request)
    if learner is None:
        # No identity yet, so no cards: every such visitor sees the same statuses and plan.
        key = f"drill-status:{topic}"
        cached = caches["pages"].get(key)
        if cached is None:
            topic_obj = _drill_topic(topic)
            cached = (topic_obj, *_drill_statuses(topic_obj, None))
            caches["pages"].set(key, cached, 60)  # cleared with the shared pages when content loads
        topic_obj, rows, plan = cached
    else:
        topic_obj = _drill_topic(topic)
        rows, plan = _drill_statuses(topic_obj, learner)
    level, chapter = request.GET.get("level", ""), request.GET.get("chapter", "")
    if level or chapter:  # the filtered table holds only these rows
        shown = _drill_questions(topic_obj)
        wanted = {q.pk for q in shown if (not level or q.level == level) and (not chapter or q.section.slug == chapter)}
        rows = [row for row in rows if row["question"].pk in wanted]
    context = {"topic": topic_obj, "rows": rows, "plan": plan, "oob": True}
    return render(request, "drills/topic_drill.html#personal", context)


def _drill_topic(slug: str) -> Topic:
    return get_object_or_404(Topic.objects.only("pk", "slug", "title"), slug=slug)  # not its long texts


def _drill_statuses(topic: Topic, learner) -> tuple[list[dict], services.DrillPlan]:
    now = timezone.now()
    cards = {card.question_id: card for card in Card.objects.owned_by(learner).filter(question__topic=topic)}
    rows = []
    for question in topic.questions.only("pk", "slug", "topic_id").in_order():
        card = cards.get(question.pk)
        if card is None:
            status, label = "new", "New"
        elif card.due <= now:
            status, label = "due", "Due now"
        else:
            status, label = "later", f"Due in {scheduling.humanize_delta(card.due - now)}"
        rows.append({"question": question, "status": status, "label": label})
    return rows, services.drill_plan(learner=learner, topic=topic, now=now)


ANSWERS_PER_MINUTE = 20
IMPORTS_PER_WINDOW, IMPORT_WINDOW_S = 5, 10 * 60
# A write that waited out the database's busy timeout (SQLite's lock, a PostgreSQL lock timeout) is the
# site's moment, not the visitor's mistake: 503 and a message, never a 500.
DATABASE_BUSY = "The site is busy right now, so this was not saved. Please try again in a few seconds."
DATABASE_BUSY_RETRY_S = 5


def answer_refusal(request: HttpRequest) -> str:
    """Bound answer submissions per visitor (account or anonymous id), with a per-address ceiling several times
    larger for anonymous visitors (people behind one NAT each answer): "" while allowed, else the message.
    Fails open: drills must keep working while Redis is down."""
    refused = refused_request("drill-answer", request, limit=ANSWERS_PER_MINUTE, window_s=60, fail_open=True)
    if refused == "address":
        return (
            f"Your network sent {ANSWERS_PER_MINUTE * ADDRESS_CEILING_TIMES} answers this minute, the most anonymous "
            f"visitors at one address may; try again shortly. {SIGN_UP_INVITE}"
        )
    if refused:
        return f"That is {ANSWERS_PER_MINUTE} answers in a minute; take a breath and try again shortly."
    return ""


def busy(response: HttpResponse) -> HttpResponse:
    response["Retry-After"] = str(DATABASE_BUSY_RETRY_S)
    return response


@require_http_methods(["GET", "HEAD", "POST"])
def question(request: HttpRequest, topic: str, slug: str) -> HttpResponse:
    question = get_question(topic, slug)
    if request.method == "POST":
        form = AttemptForm(request.POST)
        refusal = answer_refusal(request) if form.is_valid() else ""
        if refusal:
            form.add_error(None, refusal)
            return page(request, "drills/question.html", "drill", question_context(question, form=form), 429)
        if form.is_valid():
            try:
                attempt = services.attempt_submit(
                    learner=visitor_for(request, create=True),
                    question=question,
                    answer=form.cleaned_data["answer"],
                    gave_up=form.gave_up,
                    started_at_ms=form.cleaned_data["started_at"],
                )
            except OperationalError:
                form.add_error(None, DATABASE_BUSY)
                return busy(page(request, "drills/question.html", "drill", question_context(question, form=form), 503))
            if request.htmx:
                response = page(request, "drills/question.html", "drill", reveal_context(request, attempt))
                return push_url(response, attempt.get_absolute_url())
            # No #result here: the result heading is at the top of the page and takes focus by autofocus.
            return redirect(attempt)
    else:
        form = AttemptForm(initial={"started_at": int(timezone.now().timestamp() * 1000), "action": "submit"})
    unrated = (
        Attempt.objects.owned_by(visitor_for(request))
        .filter(question=question, rated_at__isnull=True)
        .only("token", "submitted_at", "question")
        .order_by("-submitted_at")
        .first()
    )
    return page(request, "drills/question.html", "drill", question_context(question, form=form, unrated=unrated))


def get_attempt(request: HttpRequest, question: Question, token) -> Attempt:
    learner = visitor_for(request)
    return get_object_or_404(
        Attempt.objects.owned_by(learner).select_related("review__card"), token=token, question=question
    )


@require_safe
def attempt(request: HttpRequest, topic: str, slug: str, token) -> HttpResponse:
    question = get_question(topic, slug)
    return page(
        request, "drills/question.html", "drill", reveal_context(request, get_attempt(request, question, token))
    )


@require_POST
def rate(request: HttpRequest, topic: str, slug: str, token) -> HttpResponse:
    question = get_question(topic, slug)
    attempt = get_attempt(request, question, token)
    form = RatingForm(request.POST, points=len(question.key_points))
    if attempt.rated_at is not None:
        return already_rated(request, attempt)
    if not form.is_valid():
        errors = [error for field_errors in form.errors.values() for error in field_errors]
        return page(request, "drills/question.html", "drill", reveal_context(request, attempt, rate_errors=errors), 400)
    try:
        services.attempt_rate(attempt=attempt, rating=form.cleaned_data["rating"], ticked=form.cleaned_data["ticked"])
    except services.AlreadyRated:
        return already_rated(request, attempt)
    except OperationalError:
        context = reveal_context(request, attempt, rate_errors=[DATABASE_BUSY])
        return busy(page(request, "drills/question.html", "drill", context, 503))
    if request.htmx:
        return page(request, "drills/question.html", "drill", reveal_context(request, attempt))
    return redirect(f"{attempt.get_absolute_url()}#outcome")


def already_rated(request: HttpRequest, attempt: Attempt) -> HttpResponse:
    message = "You already rated this attempt; the first rating stands. Start a new attempt to review again."
    if request.htmx:
        attempt.refresh_from_db()
        return page(request, "drills/question.html", "drill", reveal_context(request, attempt, rate_errors=[message]))
    messages.warning(request, message)
    return redirect(attempt)


@require_safe
def progress(request: HttpRequest) -> HttpResponse:
    learner = visitor_for(request)
    data = services.progress_for(learner=learner)
    return render(
        request,
        "drills/progress.html",
        {
            "nav": "drills",
            "progress": data,
            "chart": day_bars(data.per_day),
            "mastered_rule": scheduling.MASTERED_RULE,
            "readiness_rule": services.READINESS_RULE,
            "import_form": ImportForm(),
        },
    )


@require_safe
def export(request: HttpRequest) -> HttpResponse:
    learner = visitor_for(request)
    data = services.export_data(learner=learner)
    response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="queue-prep-drills-{stamp}.json"'
    return response


def import_refused(request: HttpRequest) -> str | None:
    """Bound the imports that write (a file refused as invalid writes nothing): a few per visitor is plenty,
    with the same per-address ceiling. Fails open like drill answers: importing needs only the database."""
    return refused_request("drill-import", request, limit=IMPORTS_PER_WINDOW, window_s=IMPORT_WINDOW_S, fail_open=True)


def import_file(request: HttpRequest, upload) -> tuple[int, str]:
    """Import an uploaded export for this visitor: (HTTP status, message for the learner)."""
    try:
        cards = services.parse_export(services.export_loads(upload.read()))
    except ValueError as exc:  # ImportRejected, or a parser limit we did not foresee: the file's fault
        message = str(exc) if isinstance(exc, services.ImportRejected) else ""
        return 400, message or "That file could not be read as a drills export."
    refused = import_refused(request)
    if refused == "address":
        return 429, (
            f"Your network imported {IMPORTS_PER_WINDOW * ADDRESS_CEILING_TIMES} files in {IMPORT_WINDOW_S // 60} "
            f"minutes, the most anonymous visitors at one address may. {SIGN_UP_INVITE}"
        )
    if refused:
        return 429, (
            f"That is {IMPORTS_PER_WINDOW} imports in {IMPORT_WINDOW_S // 60} minutes; "
            "please wait a few minutes before importing again."
        )
    try:
        counts = services.import_cards(learner=visitor_for(request, create=True), cards=cards)
    except OperationalError:
        # Batches already written stay; importing the same file again adds only what is missing.
        return 503, f"{DATABASE_BUSY} Part of the file may have been imported; importing it again adds the rest."
    return 200, (
        f"Imported {counts['cards']} questions: {counts['new_cards']} new cards, "
        f"{counts['new_reviews']} new reviews (already-known reviews were skipped)."
    )


@require_http_methods(["GET", "HEAD", "POST"])
def import_view(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
    status, error = 200, ""
    if request.method == "POST":
        if not form.is_valid():
            status = 400
        else:
            status, message = import_file(request, form.cleaned_data["file"])
            if status == 200:
                messages.success(request, message)
                return redirect("drills:progress")
            error = message
    response = render(request, "drills/import.html", {"nav": "drills", "form": form, "error": error}, status=status)
    return busy(response) if status == 503 else response
