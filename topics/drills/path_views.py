"""The learner's path: the plan page, and what Home shows (contributed through settings.HOME_CONTEXT)."""

from datetime import timedelta

from django.contrib import messages
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from prepsite.visitor import visitor_for
from topics.drills import services
from topics.drills.forms import PlanForm


def path_context(request: HttpRequest) -> dict:
    """The path, today's plan and the Continue step for this visitor."""
    learner = visitor_for(request)
    path = services.learner_path(learner=learner)
    drills = services.drill_plan(learner=learner)
    step = services.continue_step(learner=learner, path=path, first_drill=drills.first)
    context = {"path": path, "today_plan": path.today_plan if path else None, "next_step": step, "drills": drills}
    if path is None:
        today = services.local_today(None)
        context["form"] = PlanForm(initial={"interview_date": today + timedelta(days=14)}, today=today)
    return context


def home_context(request: HttpRequest) -> dict:
    """Home's "Day N of M" and Continue; nothing (the plain Home) while the tables are not migrated."""
    try:
        return path_context(request)
    except DatabaseError:
        return {}


@require_http_methods(["GET", "HEAD", "POST"])
def plan(request: HttpRequest) -> HttpResponse:
    learner = visitor_for(request)
    current = services.learner_plan(learner)
    today = services.local_today(current)
    initial = {"interview_date": today + timedelta(days=14)}
    if current is not None:
        initial = {
            "interview_date": current.interview_date,
            "level": current.level,
            "hide_junior": current.hide_junior,
            "time_zone": current.time_zone,
        }
    form = PlanForm(request.POST or None, initial=initial, today=today)
    if request.method == "POST":
        if form.is_valid():
            services.plan_save(learner=visitor_for(request, create=True), **form.cleaned_data)
            messages.success(request, "Plan saved." if current else "Your plan is saved: day 1 is today.")
            return redirect("home" if request.POST.get("next") == "home" else "drills:plan")
        context = {"nav": "drills", **path_context(request), "form": form}
        return render(request, "drills/plan.html", context, status=400)
    return render(request, "drills/plan.html", {"nav": "drills", **path_context(request), "form": form})
