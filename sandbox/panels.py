"""The live view's panels as one rendered payload, cached per version so watching costs almost nothing.

A poll whose version matches the page's is a 204; a poll for a version some tab (or the renderer,
`manage.py lab_renderer`) already drew is a cache hit; only a version nobody drew yet is rendered in
the request. The cached payload holds nothing of one visitor's (no CSRF token, no message): the poll
path checks ownership with the page's watch token before it serves it.
"""

import json
import time

from django.template.loader import render_to_string
from django_htmx.http import HTMX_STOP_POLLING
from redis import Redis

from prepsite.redis_conn import get_redis
from sandbox import experiments, live, readmodel
from sandbox.models import Experiment
from sandbox.watch import watch_token

TEMPLATE = "sandbox/detail.html#panels"
WATCH_WINDOW_S = 5  # an experiment polled within this long is being watched: the renderer keeps it drawn


def live_context(experiment: Experiment, *, with_links: bool) -> dict:
    state = readmodel.read_state(experiment, events=20)
    if state.finished and experiment.is_running and experiments.finish_if_done(experiment.pk):
        experiment.refresh_from_db()
    view = readmodel.live_view(experiment, state, with_links=with_links)
    return {**view, "watch": watch_token(experiment.pk)}


def payload(experiment: Experiment, *, flash: str = "", flash_error: bool = False) -> dict:
    """{status, body, trigger, version}: every panel as an out-of-band morph, and what to announce."""
    view = live_context(experiment, with_links=False)
    if view["done"]:
        view |= readmodel.preset_links([experiment.preset]).get(experiment.preset, {})
    body = render_to_string(TEMPLATE, {**view, "oob": True, "flash": flash, "flash_error": flash_error})
    trigger = json.dumps({"lab-announce": {"items": view["announce"]}}) if view.get("announce") else None
    status = HTMX_STOP_POLLING if view["done"] and not flash else 200
    return {"status": status, "body": body, "trigger": trigger, "version": view["version"]}


def drawn(experiment: Experiment) -> dict:
    """The current version's payload, rendered now and kept for every other tab."""
    result = payload(experiment)
    live.store_render(experiment.pk, result["version"], json.dumps(result).encode())
    return result


def cached(experiment_id: int, shown: str, *, watcher: bool = True) -> tuple[bool, dict | None]:
    """(unchanged since `shown`, the current version's payload if some tab already drew it)."""
    _version, same, stored = live.poll(experiment_id, shown, watcher=watcher)
    return same, (json.loads(stored) if stored else None)


def render_pass(connection: Redis | None = None) -> int:
    """Draw every watched experiment whose current version nobody drew yet; returns how many."""
    connection = connection or get_redis()
    drew = 0
    for experiment_id in live.watched(time.time() - WATCH_WINDOW_S, connection):
        _same, stored = cached(experiment_id, "", watcher=False)
        if stored is not None:
            continue
        experiment = Experiment.objects.filter(pk=experiment_id).first()
        if experiment is not None:
            drawn(experiment)
            drew += 1
    return drew
