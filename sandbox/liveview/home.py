"""The Lab's home (preset cards, the start form, recent runs, the workers) and the history page."""

from datetime import UTC, datetime

from django.utils.timesince import timesince

from prepsite.redis_conn import LAB_QUEUE, get_redis
from sandbox import delivery
from sandbox.engine import rq_storage
from sandbox.engine.outcome import outcome
from sandbox.engine.presets import DEFAULTS, PRESETS
from sandbox.engine.rq_storage import scheduler_alive
from sandbox.liveview import predictions
from sandbox.liveview.lag import other_models
from sandbox.liveview.readmodel import preset_links


def ago(moment: datetime, now: datetime | None = None) -> str:
    """'3 minutes ago' in Django's own words (timesince), the largest unit only; 'just now' under a minute."""
    now = now or datetime.now(UTC)
    return "just now" if (now - moment).total_seconds() < 60 else f"{timesince(moment, now, depth=1)} ago"


def recent(experiments) -> list[dict]:
    return [{"experiment": e, "ago": ago(e.created_at)} for e in experiments]


def history(experiments) -> list[dict]:
    """Each run's figures as it first finished (a later redrive changes its page, not its history row)."""
    return [
        {"experiment": e, "outcome": {**e.first_pass, "expired": False} if e.first_pass else outcome(e)}
        for e in experiments
    ]


def lab_home(experiments, preset_name: str, form, prediction_form=None) -> dict:
    """The Lab home: preset cards with their links, the start form in its groups, recent runs, the workers."""
    preset = PRESETS.get(preset_name) or PRESETS["happy"]
    links = preset_links(PRESETS)
    return {
        "cards": [{"preset": p, **links.get(p.name, {}), "chosen": p.name == preset.name} for p in PRESETS.values()],
        "preset": preset,
        "form": form,
        "groups": form.groups(preset.name),
        "givens": givens(form, preset),
        "prediction_form": prediction_form or predictions.PredictionForm(preset.name),
        "other_models": other_models(delivery.model_for({"model": form["model"].value() or DEFAULTS["model"]})),
        "recent": recent(experiments[:5]),
        "status": lab_status(),
    }


def givens(form, preset) -> list[tuple[str, object]]:
    """What the preset sets, as the form holds it now: the numbers a prediction starts from."""
    return [(form[name].label, form[name].value()) for name in preset.params if name in form.fields]


def lab_status() -> dict:
    """Workers and scheduler as the Lab's home page shows them."""
    redis = get_redis()
    return {"workers": rq_storage.worker_count(redis), "scheduler": scheduler_alive(redis, LAB_QUEUE)}
