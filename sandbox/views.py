"""The Lab's pages: HTTP glue over sandbox.experiments (actions) and sandbox.readmodel (what is shown).

Every experiment is looked up through its owner, so another visitor gets a 404 for every page, fragment
and action. Redis errors propagate to prepsite.middleware, which answers 503 with a banner.
"""

import re

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from prepsite.visitor import limit_key, visitor_for
from sandbox import experiments, panels, readmodel
from sandbox.models import Experiment
from sandbox.params import MAX_JOBS, ExperimentForm
from sandbox.predictions import PredictionForm
from sandbox.presets import PRESETS
from sandbox.watch import allows

HISTORY_ROWS = 100
ASCII_NUMBER = re.compile(r"[0-9]{1,11}")  # not str.isdigit(): "²" is a digit that int() refuses


def owned_experiment(request: HttpRequest, pk: int) -> Experiment:
    return get_object_or_404(Experiment.objects.owned_by(visitor_for(request)), pk=pk)


# ---------------------------------------------------------------- home, start, history, compare


def home_context(
    request: HttpRequest, form: ExperimentForm, preset_name: str, prediction_form: PredictionForm | None = None
) -> dict:
    preset = PRESETS.get(preset_name) or PRESETS["happy"]
    links = readmodel.preset_links(PRESETS)
    cards = [{"preset": p, **links.get(p.name, {}), "chosen": p.name == preset.name} for p in PRESETS.values()]
    return {
        "nav": "lab",
        "cards": cards,
        "preset": preset,
        "form": form,
        "groups": form.groups(preset.name),
        "prediction_form": prediction_form or PredictionForm(preset.name),
        "recent": readmodel.recent(Experiment.objects.owned_by(visitor_for(request))[:5]),
        "status": readmodel.lab_status(),
    }


def _rerun_form(request: HttpRequest, raw: str) -> tuple[ExperimentForm, str] | None:
    """The form filled with one of the visitor's runs: same parameters, same seed ('run it again')."""
    if not ASCII_NUMBER.fullmatch(raw):
        return None
    source = Experiment.objects.owned_by(visitor_for(request)).filter(pk=int(raw)).first()
    if source is None or source.preset not in PRESETS:
        return None
    return ExperimentForm.for_run(source.params, source.preset, source.seed), source.preset


@require_safe
def lab_home(request: HttpRequest) -> HttpResponse:
    name = request.GET.get("preset", "happy")
    rerun = _rerun_form(request, request.GET.get("rerun", ""))
    if rerun:
        form, name = rerun
    else:
        if name not in PRESETS:
            messages.warning(request, "There is no preset with that name; showing the happy path instead.")
            name = "happy"
        form = ExperimentForm.for_preset(name)
    context = {**home_context(request, form, name), "open_params": "preset" in request.GET or bool(rerun)}
    template = "sandbox/home.html#start_panel" if request.htmx else "sandbox/home.html"
    return render(request, template, context)


def _start_forms(request: HttpRequest) -> tuple[ExperimentForm, PredictionForm, str]:
    preset_name = request.POST.get("preset", "")
    form = ExperimentForm(data=request.POST)
    prediction_form = PredictionForm(preset_name if preset_name in PRESETS else "happy", data=request.POST)
    return form, prediction_form, preset_name


def _start(request: HttpRequest, form: ExperimentForm, prediction_form: PredictionForm, **overrides):
    return experiments.experiment_start(
        owner=visitor_for(request, create=True),
        limit_key=limit_key(request),
        preset=form.cleaned_data["preset"],
        params={**form.parameters(), **overrides},
        seed=form.cleaned_data["seed"],
        prediction=form.cleaned_data["prediction"],
        predicted=prediction_form.predictions(),
    )


def _start_refused(request, form, prediction_form, preset_name, exc) -> HttpResponse:
    template = "sandbox/home.html#start_panel" if request.htmx else "sandbox/home.html"
    if exc is None:
        return render(request, template, home_context(request, form, preset_name, prediction_form), status=400)
    status = 429 if isinstance(exc, experiments.LimitExceeded) else 503
    context = {**home_context(request, form, preset_name, prediction_form), "limit_message": str(exc)}
    return render(request, template, context, status=status)


def _go(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
def start(request: HttpRequest) -> HttpResponse:
    form, prediction_form, preset_name = _start_forms(request)
    if not (form.is_valid() and prediction_form.is_valid()):
        return _start_refused(request, form, prediction_form, preset_name, None)
    try:
        experiment = _start(request, form, prediction_form)
    except (experiments.LimitExceeded, experiments.StartFailed) as exc:
        return _start_refused(request, form, prediction_form, preset_name, exc)
    return _go(request, reverse("sandbox:detail", args=[experiment.pk]))


@require_POST
def start_pair(request: HttpRequest) -> HttpResponse:
    """The same run twice, without and with full jitter, same seed: the jitter lesson side by side."""
    form, prediction_form, preset_name = _start_forms(request)
    if not (form.is_valid() and prediction_form.is_valid()):
        return _start_refused(request, form, prediction_form, preset_name, None)
    if form.cleaned_data["seed"] is None:
        form.cleaned_data["seed"] = experiments.new_seed()  # one seed for both: only the jitter differs
    try:
        first = _start(request, form, prediction_form, jitter="none")
        second = _start(request, form, prediction_form, jitter="full")
    except (experiments.LimitExceeded, experiments.StartFailed) as exc:
        return _start_refused(request, form, prediction_form, preset_name, exc)
    return _go(request, f"{reverse('sandbox:compare')}?a={first.pk}&b={second.pk}")


@require_safe
def history(request: HttpRequest) -> HttpResponse:
    rows = readmodel.history(Experiment.objects.owned_by(visitor_for(request))[:HISTORY_ROWS])
    return render(request, "sandbox/history.html", {"nav": "lab", "rows": rows})


def _pick_two(request: HttpRequest) -> list[int] | None:
    raw = [request.GET.get("a"), request.GET.get("b")]
    if not all(raw):
        raw = request.GET.getlist("id")
    if len(raw) != 2 or not all(v and ASCII_NUMBER.fullmatch(v) for v in raw):
        return None
    return [int(v) for v in raw]


@require_safe
def compare(request: HttpRequest) -> HttpResponse:
    ids = _pick_two(request)
    if ids is None:
        context = {"nav": "lab", "error": "Pick exactly two experiments to compare."}
        return render(request, "sandbox/compare.html", context, status=400)
    a, b = (owned_experiment(request, pk) for pk in ids)
    context = {"nav": "lab", **readmodel.comparison(a, b)}
    return render(request, "sandbox/compare.html#body" if request.htmx else "sandbox/compare.html", context)


# ---------------------------------------------------------------- the live view


@require_safe
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    context = {"nav": "lab", **panels.live_context(experiment, with_links=True)}
    return render(request, "sandbox/detail.html", context)


def _panels_response(result: dict) -> HttpResponse:
    return HttpResponse(result["body"], status=result["status"])


def render_panels(
    request: HttpRequest, experiment: Experiment, *, flash: str = "", flash_error: bool = False, status: int = 200
) -> HttpResponse:
    response = _panels_response(panels.payload(experiment, flash=flash, flash_error=flash_error))
    if status != 200:
        response.status_code = status
    return response


@require_safe
def live_panels(request: HttpRequest, pk: int) -> HttpResponse:
    """The poll (see sandbox.panels): 204 when nothing changed since the version the page shows, else
    every panel as an out-of-band morph (focus stays put); 286 once nothing can change. With the page's
    watch token no session is read."""
    if not allows(request.GET.get("t", ""), pk):
        pk = owned_experiment(request, pk).pk
    if not request.htmx:
        return redirect("sandbox:detail", pk=pk)
    unchanged, stored = panels.cached(pk, request.GET.get("v", ""))
    if not unchanged and stored is None:
        stored = panels.first_drawing(get_object_or_404(Experiment, pk=pk))
    return _panels_response(stored) if stored else HttpResponse(status=204)


def _job_index(request: HttpRequest, *, required: bool) -> int | HttpResponse | None:
    raw = request.POST.get("job", "").strip()
    if not raw:
        return HttpResponseBadRequest("Which job? The form needs a job number.") if required else None
    if not ASCII_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= MAX_JOBS:
        return HttpResponseBadRequest(f"A job is a number from 1 to {MAX_JOBS}.")
    return int(raw)


def _after_action(request: HttpRequest, experiment: Experiment, text: str) -> HttpResponse:
    if request.htmx:
        return render_panels(request, experiment, flash=text)
    messages.info(request, text)
    return redirect("sandbox:detail", pk=experiment.pk)


def _limited(request: HttpRequest, experiment: Experiment, text: str) -> HttpResponse:
    """A shared-lab limit: 429 with the message, as a fragment for htmx or on the whole page."""
    if request.htmx:
        return render_panels(request, experiment, flash=text, flash_error=True, status=429)
    context = {**panels.live_context(experiment, with_links=True), "flash": text, "flash_error": True, "nav": "lab"}
    return render(request, "sandbox/detail.html", context, status=429)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@require_POST
def redrive(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    job = _job_index(request, required=False)
    if isinstance(job, HttpResponse):
        return job
    try:
        count = experiments.experiment_redrive(
            experiment, jobs=None if job is None else [job], limit_key=limit_key(request)
        )
    except experiments.LimitExceeded as exc:
        return _limited(request, experiment, str(exc))
    if not count:
        return _after_action(request, experiment, "Nothing to redrive: the DLQ is empty, or a redrive just ran.")
    return _after_action(request, experiment, f"Redrove {_plural(count, 'job')} with a fresh retry budget.")


@require_POST
def fix_consumer(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    if experiments.experiment_fix_consumer(experiment):
        text = "Fixed: the consumer now accepts the malformed payload. Redrive the DLQ to replay what it parked."
    else:
        text = "The fix is already deployed; redrive the DLQ to replay it."
    return _after_action(request, experiment, text)


@require_POST
def discard(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    job = _job_index(request, required=False)
    if isinstance(job, HttpResponse):
        return job
    count = experiments.experiment_discard(experiment, jobs=None if job is None else [job])
    return _after_action(request, experiment, f"Discarded {_plural(count, 'job')} from the DLQ.")


def _running_job_action(request: HttpRequest, pk: int, action, done: str, verb: str) -> HttpResponse:
    """Crash or stop one running job of the visitor's experiment."""
    experiment = owned_experiment(request, pk)
    job = _job_index(request, required=True)
    if isinstance(job, HttpResponse):
        return job
    text = done.format(job=job) if action(experiment, job) else f"Job {job} is not running any more; nothing to {verb}."
    return _after_action(request, experiment, text)


@require_POST
def crash(request: HttpRequest, pk: int) -> HttpResponse:
    done = "Job {job}'s work-horse will be killed (SIGKILL) within a second."
    return _running_job_action(request, pk, experiments.job_crash, done, "crash")


@require_POST
def stop_job(request: HttpRequest, pk: int) -> HttpResponse:
    return _running_job_action(request, pk, experiments.job_stop, "Job {job} will stop at its next checkpoint.", "stop")


@require_POST
def stop(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    taken = experiments.experiment_stop(experiment)
    text = f"Stopping: {_plural(taken, 'job')} taken off the queue and schedule; running jobs end as they finish."
    return _after_action(request, experiment, text)
