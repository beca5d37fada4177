"""Mock interview views: a few lines of HTTP glue each; the clock, curveballs and sketches live in the model,
services/mock.py and canvas.py."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from prepsite.visitor import visitor_for
from topics.drills import canvas, scheduling, services
from topics.drills.forms import (
    MockClockForm,
    MockCurveballForm,
    MockFinishForm,
    MockNotesForm,
    MockSketchForm,
    MockStartForm,
)
from topics.drills.models import CURVEBALL_PHASE, MOCK_MINUTES, PHASES, MockInterview
from topics.drills.views import page

SKETCH_SIZE = {
    "w": canvas.WIDTH,
    "box_w": canvas.BOX_W,
    "box_h": canvas.BOX_H,
    "box_cx": canvas.BOX_W // 2,
    "box_cy": canvas.BOX_H // 2,
}


def get_mock(request: HttpRequest, pk: int) -> MockInterview:
    learner = visitor_for(request)
    return get_object_or_404(MockInterview.objects.owned_by(learner).select_related("question__topic"), pk=pk)


def mock_context(mock: MockInterview, *, now=None, **extra) -> dict:
    question = mock.question
    covered = set(mock.self_assessment)
    now = now or timezone.now()
    review = services.mock_review(mock=mock) if mock.finished_at else None
    balls = services.mock_curveball_state(mock=mock, now=now)
    phases = review.phases if review else mock.phases()
    for phase in phases:
        phase["sketch"] = canvas.sketch_view((mock.sketches or {}).get(phase["key"]))
    return {
        "nav": "drills",
        "mock": mock,
        "question": question,
        "phases": phases,
        "curveball_phase": CURVEBALL_PHASE,
        "curveballs": balls.arrived,
        "curveballs_pending": balls.pending,
        "curveball_next_at_s": balls.next_at_s,
        "curveball_next_at": scheduling.clock((balls.next_at_s or 0) * 1000),
        "popup": balls.popup,
        "curveballs_at_s": mock.curveballs_at_s(),
        "curveballs_at": scheduling.clock(mock.curveballs_at_s() * 1000),
        "review": review,
        "points": [
            {"index": i, "label": point.get("label", ""), "covered": i in covered}
            for i, point in enumerate(question.key_points)
        ],
        "elapsed_s": mock.elapsed_s(now),
        "length_s": mock.minutes * 60,
        "length": f"{mock.minutes}:00",
        "length_minutes": mock.minutes,
        "covered_count": len(covered),
        "sketch_limits": {"boxes": canvas.MAX_BOXES, "label": canvas.LABEL_MAX},
        "sketch_size": SKETCH_SIZE,
        **extra,
    }


@require_http_methods(["GET", "HEAD", "POST"])
def mock_start(request: HttpRequest) -> HttpResponse:
    form = MockStartForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        question, note = form.cleaned_data["question"], ""
        if question is None:
            question, note = services.mock_prompt_surprise()
        if question is None:
            raise Http404("No design prompts or staff-level questions are loaded yet.")
        mock = MockInterview.objects.create(
            **visitor_for(request, create=True).owner(), question=question, minutes=form.cleaned_data["minutes"]
        )
        if note:
            messages.info(request, note)
        return redirect(mock)
    learner = visitor_for(request)
    past = MockInterview.objects.owned_by(learner).select_related("question")[:20]
    context = {"nav": "drills", "form": form, "past": past, "phases": PHASES, "mock_minutes": MOCK_MINUTES}
    return render(request, "drills/mock_start.html", context, status=400 if request.method == "POST" else 200)


@require_safe
def mock_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The interview page; htmx asks for its curveballs when the timer reaches the next one's time.

    Showing a curveball whose time has come records when it arrived (once): a GET that writes, because
    "when did the interviewer interrupt" is what the page showed, whether by the timer or a reload."""
    mock = get_mock(request, pk)
    arrived = services.mock_curveballs_arrive(mock=mock)
    context = mock_context(mock, popup_oob=bool(request.htmx))
    if request.htmx and arrived:  # announced once: only the live interruption says it aloud, never a reload
        context["announce"] = f"The interviewer interrupts: “{arrived[-1]}” Press Escape to carry on first."
    return page(request, "drills/mock_detail.html", "curveballs", context)


@require_POST
def mock_curveball(request: HttpRequest, pk: int) -> HttpResponse:
    """Acknowledge an interruption: "Answer it now" (focus goes to its answer) or "Later" (back to typing)."""
    mock = get_mock(request, pk)
    form = MockCurveballForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Unknown curveball.", status=400, content_type="text/plain")
    key = form.cleaned_data["key"]
    mock.curveball_acknowledge(key)
    if request.htmx:
        context = mock_context(mock, popup_oob=True, focus=key if form.cleaned_data["then"] == "answer" else "")
        return render(request, "drills/mock_detail.html#curveballs", context)
    anchor = f"notes-{key}" if form.cleaned_data["then"] == "answer" else "curveballs"
    return redirect(f"{mock.get_absolute_url()}#{anchor}")


@require_POST
def mock_save(request: HttpRequest, pk: int) -> HttpResponse:
    mock = get_mock(request, pk)
    form = MockNotesForm(request.POST)
    if not form.is_valid():
        errors = [error for field_errors in form.errors.values() for error in field_errors]
        if request.htmx:
            context = {"errors": errors, "saved": False, "announce": "Notes not saved: " + " ".join(errors)}
            return render(request, "drills/mock_detail.html#save_status", context)
        phase = request.POST.get("phase", "")
        context = mock_context(mock, errors=errors, error_phase=phase)
        for item in context["phases"]:
            if item["key"] == phase:
                item["notes"] = request.POST.get("notes", "")
        return render(request, "drills/mock_detail.html", context, status=400)
    phase = form.cleaned_data["phase"]
    first = not (mock.notes or {}).get(phase)
    mock.save_notes(phase, form.cleaned_data["notes"])
    if phase.startswith("curveball-") and form.cleaned_data["notes"].strip():
        mock.curveball_acknowledge(phase)  # answering an interruption acknowledges it
    if request.htmx:
        announce = "Notes save as you type." if first and form.cleaned_data["notes"] else ""
        context = {"saved": True, "saved_at": timezone.now(), "announce": announce}
        return render(request, "drills/mock_detail.html#save_status", context)
    messages.success(request, "Notes saved.")
    return redirect(f"{mock.get_absolute_url()}#phase-{phase}")


@require_POST
def mock_sketch(request: HttpRequest, pk: int) -> HttpResponse:
    """One edit of a phase's box-and-arrow sketch, saved at once; a refused edit is a 400 that says why."""
    mock = get_mock(request, pk)
    form = MockSketchForm(request.POST)
    phase = request.POST.get("phase", "")
    error = form.errors_text() if not form.is_valid() else ""
    if not error:
        data = form.cleaned_data
        edit = {name: data[name] for name in ("label", "box", "source", "target", "x", "y")}
        try:
            services.mock_sketch_edit(mock=mock, phase=data["phase"], action=data["action"], **edit)
        except canvas.SketchError as refused:
            error = str(refused)
    if error and phase not in {item["key"] for item in PHASES}:
        return HttpResponse(f"Sketch not changed: {error}", status=400, content_type="text/plain")
    if request.htmx:
        context = mock_context(mock, sketch_error=error, error_phase=phase, announce_sketch=not error)
        context["phase"] = next(item for item in context["phases"] if item["key"] == phase)
        return render(request, "drills/mock_detail.html#sketch", context, status=400 if error else 200)
    if error:
        context = mock_context(mock, sketch_error=error, error_phase=phase)
        return render(request, "drills/mock_detail.html", context, status=400)
    return redirect(f"{mock.get_absolute_url()}#sketch-{phase}")


@require_POST
def mock_clock(request: HttpRequest, pk: int) -> HttpResponse:
    """Pause, resume or skip to the next phase; the page reloads with the server's clock."""
    mock = get_mock(request, pk)
    form = MockClockForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Unknown clock action: pause, resume or next.", status=400, content_type="text/plain")
    mock.clock(form.cleaned_data["action"])
    return redirect(mock)


@require_POST
def mock_finish(request: HttpRequest, pk: int) -> HttpResponse:
    mock = get_mock(request, pk)
    form = MockFinishForm(request.POST, points=len(mock.question.key_points))
    if not form.is_valid():
        return render(request, "drills/mock_detail.html", mock_context(mock, finish_error=True), status=400)
    drilled = services.mock_finish(mock=mock, covered=form.cleaned_data["covered"])
    if request.htmx:
        context = mock_context(mock, focus_finish=True, oob=True, popup_oob=True, drilled=drilled)
        return render(request, "drills/mock_detail.html#finish", context)
    return redirect(f"{mock.get_absolute_url()}#finish")


@require_safe
def mock_export(request: HttpRequest, pk: int) -> HttpResponse:
    mock = get_mock(request, pk)
    if mock.finished_at is None:  # the write-up holds the rubric: it comes after the interview, as the rubric does
        return HttpResponse(
            "Finish the interview first: the write-up holds the rubric.", status=409, content_type="text/plain"
        )
    context = mock_context(mock)
    for phase in context["phases"]:
        sketch = (mock.sketches or {}).get(phase["key"])
        phase["sketch_text"] = canvas.sketch_text(sketch) if sketch and sketch.get("boxes") else ""
        phase["sketch_mermaid"] = canvas.sketch_mermaid(sketch) if phase["sketch_text"] else ""
    text = render(request, "drills/mock_export.md", context).content
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="mock-interview-{mock.pk}.md"'
    return response
