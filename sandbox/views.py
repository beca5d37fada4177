"""The Lab's pages: HTTP glue over sandbox.engine.experiments (actions) and sandbox.liveview (what is shown).

Experiments are looked up through their owner (another visitor gets a 404 for everything); Redis errors
propagate to prepsite.middleware, which answers 503 with a banner."""

import re

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from prepsite.visitor import address_key, limit_key, visitor_for
from sandbox import delivery
from sandbox.engine import budget, experiments, presets
from sandbox.engine.lessons import lesson_for
from sandbox.liveview import home, panels, predictions, readmodel, watch
from sandbox.liveview.compare import comparison
from sandbox.models import Experiment
from sandbox.params import ExperimentForm

HISTORY_ROWS = 100
PICK_TWO = {"nav": "lab", "error": "Pick exactly two experiments to compare."}
ASCII_NUMBER = re.compile(r"[0-9]{1,11}")  # not str.isdigit(): "²" is a digit that int() refuses


def owned_experiment(request: HttpRequest, pk: int) -> Experiment:
    return get_object_or_404(Experiment.objects.owned_by(visitor_for(request)), pk=pk)


# ---------------------------------------------------------------- home, start, history, compare


def home_context(request: HttpRequest, form: ExperimentForm, preset_name: str, prediction_form=None) -> dict:
    mine = Experiment.objects.owned_by(visitor_for(request))
    return {"nav": "lab", **home.lab_home(mine, preset_name, form, prediction_form)}


def _own_run(request: HttpRequest, raw: str) -> Experiment | None:
    """One of the visitor's runs of a known preset, by the id a form sent; None for anything else."""
    if not ASCII_NUMBER.fullmatch(raw):
        return None
    source = Experiment.objects.owned_by(visitor_for(request)).filter(pk=int(raw)).first()
    return source if source is not None and source.preset in presets.PRESETS else None


@require_safe
def lab_home(request: HttpRequest) -> HttpResponse:
    name = request.GET.get("preset", "happy")
    source = _own_run(request, request.GET.get("rerun", ""))  # "run it again": same parameters, same seed
    if source is None and name not in presets.PRESETS:
        messages.warning(request, "There is no preset with that name; showing the happy path instead.")
        name = "happy"
    name = source.preset if source else name
    form = ExperimentForm.for_run(source.params, name, source.seed) if source else ExperimentForm.for_preset(name)
    carried = predictions.PredictionForm(name, initial=source.predicted) if source else None
    context = {
        **home_context(request, form, name, carried),
        "open_params": "preset" in request.GET or bool(source),
        "rerun_of": source,
    }
    if request.GET.get("mode") == "choices":
        context["prediction_form"].use_choices()
        context["choices_mode"] = True
    if ("preset" in request.GET and "stay" not in request.GET) or source:
        context["prediction_form"].focus_first()  # a preset was chosen: the next thing to do is predict
    template = "sandbox/home.html#start_panel" if request.htmx else "sandbox/home.html"
    return render(request, template, context)


def _start_forms(request: HttpRequest, data=None) -> tuple[ExperimentForm, predictions.PredictionForm, str]:
    data = request.POST if data is None else data
    preset_name = data.get("preset", "")
    form = ExperimentForm(data=data)
    prediction_form = predictions.PredictionForm(preset_name if preset_name in presets.PRESETS else "happy", data=data)
    return form, prediction_form, preset_name


def _start(request: HttpRequest, form: ExperimentForm, prediction_form: predictions.PredictionForm, *variants):
    """Start the form's run, or one run per variant (parameter overrides) together: all of them or none."""
    rerun_of = _own_run(request, request.POST.get("rerun_of", ""))
    runs = [
        {
            "preset": form.cleaned_data["preset"],
            "params": {**form.parameters(), **variant},
            "seed": form.cleaned_data["seed"],
            "prediction": form.cleaned_data["prediction"],
            "predicted": prediction_form.predictions(),
            "rerun_of": rerun_of,
        }
        for variant in variants or [{}]
    ]
    return experiments.experiment_start_many(
        owner=visitor_for(request, create=True),
        limit_key=limit_key(request),
        address_key=address_key(request),
        runs=runs,
    )


def _start_refused(request, form, prediction_form, preset_name, exc) -> HttpResponse:
    template = "sandbox/home.html#start_panel" if request.htmx else "sandbox/home.html"
    context = {**home_context(request, form, preset_name, prediction_form), "limit_message": str(exc or "")}
    status = 400 if exc is None else 429 if isinstance(exc, experiments.LimitExceeded) else 503
    return render(request, template, context, status=status)


def _go(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
def start(request: HttpRequest) -> HttpResponse:
    form, prediction_form, preset_name = _start_forms(request)
    if not (form.is_valid() and prediction_form.is_valid()):
        return _start_refused(request, form, prediction_form, preset_name, None)
    try:
        (experiment,) = _start(request, form, prediction_form)
    except (experiments.LimitExceeded, experiments.StartFailed) as exc:
        return _start_refused(request, form, prediction_form, preset_name, exc)
    return _go(request, reverse("sandbox:detail", args=[experiment.pk]))


def _start_side_by_side(request: HttpRequest, variants: list[dict], data=None, source=None) -> HttpResponse:
    """Start each variant of one form with one seed (after `source`, a run already made) and compare two."""
    form, prediction_form, preset_name = _start_forms(request, data)
    if form.is_valid() and variants[-1].get("model", "") == (source.params if source else form.cleaned_data)["model"]:
        form.add_error("model", "Pick a second model other than this run's own.")
    if not (form.is_valid() and prediction_form.is_valid()):
        return _start_refused(request, form, prediction_form, preset_name, None)
    if form.cleaned_data["seed"] is None:
        form.cleaned_data["seed"] = experiments.new_seed()  # one seed for both: only the variant differs
    try:
        runs = ([source] if source else []) + _start(request, form, prediction_form, *variants)
    except (experiments.LimitExceeded, experiments.StartFailed) as exc:
        return _start_refused(request, form, prediction_form, preset_name, exc)
    return _go(request, f"{reverse('sandbox:compare')}?a={runs[0].pk}&b={runs[1].pk}")


@require_POST
def start_pair(request: HttpRequest) -> HttpResponse:
    """The same run twice, without and with full jitter, same seed: the jitter lesson side by side."""
    return _start_side_by_side(request, [{"jitter": "none"}, {"jitter": "full"}])


@require_POST
def start_models(request: HttpRequest) -> HttpResponse:
    """The same preset, seed and parameters on a second model: two new runs, or a run's own and one new."""
    second = request.POST.get("vs_model", "")
    if second not in delivery.MODELS:
        return HttpResponseBadRequest("Which second model? Pick rq, stream or log.")
    if "source" not in request.POST:
        return _start_side_by_side(request, [{}, {"model": second}])
    source = _own_run(request, request.POST["source"])
    if source is None:
        return HttpResponseBadRequest("Run which experiment again? Start it from one of your runs' pages.")
    data = {**source.params, "preset": source.preset, "seed": source.seed, "prediction": ""}
    return _start_side_by_side(request, [{"model": second}], data, source)


@require_safe
def history(request: HttpRequest) -> HttpResponse:
    rows = home.history(Experiment.objects.owned_by(visitor_for(request))[:HISTORY_ROWS])
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
        return render(request, "sandbox/compare.html", PICK_TWO, status=400)
    a, b = (owned_experiment(request, pk) for pk in ids)
    context = {"nav": "lab", **comparison(a, b)}
    return render(request, "sandbox/compare.html#body" if request.htmx else "sandbox/compare.html", context)


# ---------------------------------------------------------------- the live view


@require_safe
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    raw, why = request.GET.get("why"), lesson_for(experiment.preset).why
    if raw is not None and not (why and ASCII_NUMBER.fullmatch(raw) and int(raw) < len(why.options)):
        return HttpResponseBadRequest("Pick one of the answers to the 'why?' question.")
    answer = int(raw) if raw is not None else None
    context = {"nav": "lab", **panels.live_context(experiment, with_links=True, why_answer=answer)}
    template = "sandbox/detail.html#why" if request.htmx and raw is not None else "sandbox/detail.html"
    return render(request, template, context)


@require_POST
def try_next(request: HttpRequest, pk: int) -> HttpResponse:
    """Start the one-knob variant the lesson suggests: this run's parameters and seed, one knob changed."""
    source = owned_experiment(request, pk)
    variant = lesson_for(source.preset).try_next
    if variant is None:
        return HttpResponseBadRequest("This experiment has no suggested next step; use 'Run it again'.")
    form = ExperimentForm(data={**source.params, **variant.params, "preset": source.preset, "seed": source.seed})
    if not form.is_valid():
        return HttpResponseBadRequest(f"The variant does not fit the Lab's limits: {form.errors.as_text()}")
    try:
        experiment = experiments.experiment_start(
            owner=visitor_for(request, create=True),
            limit_key=limit_key(request),
            preset=source.preset,
            params=form.parameters(),
            seed=source.seed,
            rerun_of=source,
        )
    except (experiments.LimitExceeded, experiments.StartFailed) as exc:
        return _refused(request, source, str(exc), 429 if isinstance(exc, experiments.LimitExceeded) else 503)
    return _go(request, reverse("sandbox:detail", args=[experiment.pk]))


def render_panels(request: HttpRequest, experiment: Experiment, *, flash: str = "", flash_error=False, status=None):
    result = panels.payload(experiment, flash=flash, flash_error=flash_error)
    return HttpResponse(result["body"], status=status or result["status"])


@require_safe
def live_panels(request: HttpRequest, pk: int) -> HttpResponse:
    """The poll (sandbox.liveview.panels): 204 when nothing changed since the page's version, else every panel as an
    out-of-band morph (focus stays put); 286 once nothing can change. The page's watch token spares the session."""
    if not watch.allows(request.GET.get("t", ""), pk):
        pk = owned_experiment(request, pk).pk
    if not request.htmx:
        return redirect("sandbox:detail", pk=pk)
    unchanged, stored = panels.cached(pk, request.GET.get("v", ""))
    if not unchanged and stored is None:
        stored = panels.first_drawing(get_object_or_404(Experiment, pk=pk))
    return HttpResponse(stored["body"], status=stored["status"]) if stored else HttpResponse(status=204)


def _jobs(request: HttpRequest, *, required: bool) -> list[int] | HttpResponse | None:
    """The one job a form names, as a list; None (all jobs) when it names none and none is required."""
    raw = request.POST.get("job", "").strip()
    if not raw:
        return HttpResponseBadRequest("Which job? The form needs a job number.") if required else None
    if not ASCII_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= budget.MAX_JOBS:
        return HttpResponseBadRequest(f"A job is a number from 1 to {budget.MAX_JOBS}.")
    return [int(raw)]


def _after_action(request: HttpRequest, experiment: Experiment, text: str) -> HttpResponse:
    if request.htmx:
        return render_panels(request, experiment, flash=text)
    messages.info(request, text)
    return redirect("sandbox:detail", pk=experiment.pk)


def _refused(request: HttpRequest, experiment: Experiment, text: str, status: int = 429) -> HttpResponse:
    """A refused action (429: a shared-lab limit) with the message, as a fragment for htmx or the whole page."""
    if request.htmx:
        return render_panels(request, experiment, flash=text, flash_error=True, status=status)
    context = {**panels.live_context(experiment, with_links=True), "flash": text, "flash_error": True, "nav": "lab"}
    return render(request, "sandbox/detail.html", context, status=status)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _group_or_jobs(request: HttpRequest, experiment: Experiment) -> list[int] | HttpResponse | None:
    """A DLQ group's jobs (`group`: its error class), else the one job a form names, else None (all)."""
    if "group" not in request.POST:
        return _jobs(request, required=False)
    jobs = readmodel.dlq_group_jobs(experiment, request.POST["group"][:100])
    return jobs or HttpResponseBadRequest("No dead letters have that error; the DLQ may have changed. Refresh.")


@require_POST
def redrive(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = owned_experiment(request, pk)
    jobs = _group_or_jobs(request, experiment)
    if isinstance(jobs, HttpResponse):
        return jobs
    try:
        count = experiments.experiment_redrive(experiment, jobs=jobs, limit_key=limit_key(request))
    except experiments.LimitExceeded as exc:
        return _refused(request, experiment, str(exc))
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
    jobs = _group_or_jobs(request, experiment)
    if isinstance(jobs, HttpResponse):
        return jobs
    count = experiments.experiment_discard(experiment, jobs=jobs)
    return _after_action(request, experiment, f"Discarded {_plural(count, 'job')} from the DLQ.")


def _running_job_action(request: HttpRequest, pk: int, action, done: str, verb: str) -> HttpResponse:
    """Crash or stop one running job of the visitor's experiment."""
    experiment = owned_experiment(request, pk)
    jobs = _jobs(request, required=True)
    if isinstance(jobs, HttpResponse):
        return jobs
    job = jobs[0]
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


@require_POST
def kill_consumer(request: HttpRequest, pk: int) -> HttpResponse:
    """Kill one live stream/log consumer from a running run's page (its pool restarts it)."""
    experiment = owned_experiment(request, pk)
    if not delivery.CONSUMER_NAME.fullmatch(name := request.POST.get("consumer", "")):
        return HttpResponseBadRequest("Which consumer? Pick one from the list of live consumers.")
    try:
        text = experiments.experiment_kill_consumer(experiment, name, limit_key=limit_key(request))
    except (experiments.KillRefused, experiments.LimitExceeded) as exc:
        return _refused(request, experiment, str(exc), 400 if isinstance(exc, experiments.KillRefused) else 429)
    return _after_action(request, experiment, text)
