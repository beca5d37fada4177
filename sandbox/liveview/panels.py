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
from sandbox.engine import experiments, live
from sandbox.engine import outcome as run_outcome
from sandbox.liveview import lesson, readmodel, render_cache
from sandbox.liveview.watch import watch_token
from sandbox.models import Experiment

TEMPLATE = "sandbox/detail.html#panels"
WATCH_WINDOW_S = 5  # an experiment polled within this long is being watched: the renderer keeps it drawn
LATEST_FRESH_S = 1.0  # a drawing of an older version may stand in for this long (the renderer redraws in ~0.1 s)


def live_context(experiment: Experiment, *, with_links: bool, why_answer: int | None = None) -> dict:
    if experiment.is_running:
        render_cache.watch(experiment.pk)
    state = run_outcome.read_state(experiment, events=20)
    if state.finished and experiment.is_running and experiments.finish_if_done(experiment.pk):
        experiment.refresh_from_db()
    view = readmodel.live_view(experiment, state, with_links=with_links)
    view["lesson"] = lesson.lesson(experiment, view, why_answer=why_answer)
    # What to announce rides on the counters panel: the page says each item once (static/js/lab.js).
    return {**view, "watch": watch_token(experiment.pk), "announce_json": json.dumps(view.get("announce", []))}


def payload(experiment: Experiment, *, flash: str = "", flash_error: bool = False) -> dict:
    """{status, body, version, drawn_at}: every panel as an out-of-band morph (with what to announce)."""
    view = live_context(experiment, with_links=False)
    if view["done"]:
        view |= readmodel.preset_links([experiment.preset]).get(experiment.preset, {})
    body = render_to_string(TEMPLATE, {**view, "oob": True, "flash": flash, "flash_error": flash_error})
    status = HTMX_STOP_POLLING if view["done"] and not flash else 200
    return {"status": status, "body": body, "version": view["version"], "drawn_at": time.time()}


def drawn(experiment: Experiment) -> dict:
    """The current version's payload, rendered now and kept for every other tab."""
    result = payload(experiment)
    render_cache.store_render(experiment.pk, result["version"], _stored(result))
    return result


def _stored(result: dict) -> bytes:
    """One line of JSON about the drawing, then the body as is: a cache hit decodes a line, not 50 KB."""
    meta = {key: value for key, value in result.items() if key != "body"}
    return json.dumps(meta).encode() + b"\n" + result["body"].encode()


def _loaded(stored: bytes) -> dict:
    head, _, body = stored.partition(b"\n")
    return {**json.loads(head), "body": body}


def cached(experiment_id: int, shown: str, *, watcher: bool = True) -> tuple[bool, dict | None]:
    """(nothing newer than `shown` to draw yet, the payload to send).

    The payload is the current version's drawing when some tab or the renderer made it; else the
    latest drawing while it is fresh (the renderer replaces it within moments), never a stale one that
    would stop the page polling; else None: the caller draws it (one request at a time)."""
    version, same, stored = render_cache.poll(experiment_id, shown, watcher=watcher)
    if same:
        return True, None
    if not version:
        return False, None  # expired: the caller draws the stored summary (and the page stops polling)
    result = _loaded(stored) if stored else None
    if result is None or result["version"] == version:
        return False, result
    fresh = time.time() - result.get("drawn_at", 0) < LATEST_FRESH_S and result["status"] == 200
    if result["version"] == shown and fresh:
        return True, None  # changed, but not drawn yet: keep showing what the page shows
    return False, result if fresh else None


def first_drawing(experiment: Experiment) -> dict | None:
    """Nothing (fresh) drawn: one request draws it (a short lock), the others wait for their next poll."""
    if not live.exists(experiment.pk):
        return payload(experiment)  # expired: nothing to share or lock, and it draws the stored summary
    if not live.Recorder(experiment.pk).take_render_lock():
        return None
    return drawn(experiment)


def render_pass(connection: Redis | None = None) -> int:
    """Draw every watched experiment whose current version nobody drew yet; returns how many are watched."""
    connection = connection or get_redis()
    watched = render_cache.watched(time.time() - WATCH_WINDOW_S, connection)
    for experiment_id in watched:
        version, _same, stored = render_cache.poll(experiment_id, "", watcher=False, connection=connection)
        if stored is not None and _loaded(stored)["version"] == version:
            continue
        experiment = Experiment.objects.filter(pk=experiment_id).first()
        if experiment is not None:
            drawn(experiment)
    return len(watched)
