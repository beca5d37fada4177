import secrets
import threading
import time
from collections.abc import Callable

import pytest
from django.db import connections
from django.test import Client

from prepsite.visitor import ANON_KEY, CLI, Visitor
from sandbox.engine import experiments, live
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from tests.conftest import wait_for

FAST = {"duration_ms": 50, "duration_spread_ms": 20}


def lab_form(name: str = "happy", **overrides) -> dict:
    """The Lab's start form for preset `name`, as a browser posts it (every field a string)."""
    data = {**PRESETS[name].parameters(), "preset": name, "seed": "7", "prediction": ""}
    return {key: str(value) for key, value in {**data, **overrides}.items()}


def visitor_from(address: str) -> Client:
    """A browser at `address` with no cookie yet: every request of a fresh session looks like this."""
    return Client(REMOTE_ADDR=address)


def started_id(response) -> int:
    """The experiment a start form's redirect points at."""
    assert response.status_code == 302, response.content[:3000]
    return int(response["Location"].rstrip("/").rsplit("/", 1)[1])


def start(preset: str, owner: Visitor = CLI, seed: int = 7, **overrides) -> Experiment:
    params = {**PRESETS[preset].parameters(), **overrides}
    return experiments.experiment_start(owner=owner, preset=preset, params=params, seed=seed)


def run_story(experiment_id: int) -> str:
    """What a run's record says, for a failure message: counters, the DLQ, what is in flight, the events."""
    state = live.read(experiment_id, events=60)
    lines = [f"run {experiment_id}: counters={state.counters} dlq={state.dlq} running={state.running}"]
    lines += [f"scheduled={state.scheduled}", consumers_story(experiment_id)]
    lines += [f"  {event}" for event in reversed(state.events)]
    return "\n".join(lines)


def consumers_story(experiment_id: int) -> str:
    """The stream/log consumers as the fair share sees them: each one's heartbeat age, the shares, who is busy."""
    from prepsite.redis_conn import get_redis
    from sandbox.engine import fairshare, keys

    redis, now = get_redis(), time.time()
    beats = {name.decode(): round(now - score, 1) for name, score in redis.zrange(keys.MEMBERS, 0, -1, withscores=True)}
    shares = {key.decode(): int(value) for key, value in redis.hgetall(keys.CONSUMER_SHARES).items()}
    run = Experiment.objects.filter(pk=experiment_id).first()
    visitor = fairshare.rate_key(run.limit_key) if run else "?"
    busy = sorted(name.decode() for name in redis.smembers(keys.consumers_busy(visitor)))
    return f"consumers: beat ages {beats}, shares {shares}, this visitor {visitor} busy {busy}"


def wait_finished(experiment: Experiment, timeout: float = 60) -> live.LiveState:
    def done():
        state = live.read(experiment.pk)
        return state if state.finished else None

    return _waiting_on(experiment, done, timeout, 0.2, f"experiment {experiment.pk} ({experiment.preset}) to finish")


def wait_state(experiment: Experiment, predicate, timeout: float = 30, message: str = "state") -> live.LiveState:
    def check():
        state = live.read(experiment.pk)
        return state if predicate(state) else None

    return _waiting_on(experiment, check, timeout, 0.1, message)


def _waiting_on(experiment: Experiment, predicate, timeout: float, interval: float, message: str):
    try:
        return wait_for(predicate, timeout, interval=interval, message=message)
    except pytest.fail.Exception as exc:
        pytest.fail(f"{exc}\n{run_story(experiment.pk)}")


def attempt_failure_times(experiment: Experiment, job: int) -> list[float]:
    marks = live.job_marks(experiment.pk, [job])[job]
    return [m["t"] for m in marks if m["r"] != "ok"]


def now() -> float:
    return time.time()


def anonymous_visitor(client) -> Visitor:
    """Give a test client's session an anonymous visitor id, as its first action on the site would."""
    session = client.session
    session[ANON_KEY] = secrets.token_urlsafe(8)
    session.save()
    return Visitor(anon_id=session[ANON_KEY])


def together(calls: list[Callable[[], object]]) -> list[object]:
    """Run each call in a thread of its own, all released at the same moment (a barrier); their results, in
    the order they finished. Each thread closes its own database connections: one left open would keep
    PostgreSQL from dropping the test database at the end of the session."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = []

    def run(call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results.append(call())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
