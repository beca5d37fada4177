import secrets
import time

from prepsite.visitor import ANON_KEY, CLI, Visitor
from sandbox.engine import experiments, live
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from tests.conftest import wait_for

FAST = {"duration_ms": 50, "duration_spread_ms": 20}


def start(preset: str, owner: Visitor = CLI, seed: int = 7, **overrides) -> Experiment:
    params = {**PRESETS[preset].parameters(), **overrides}
    return experiments.experiment_start(owner=owner, preset=preset, params=params, seed=seed)


def wait_finished(experiment: Experiment, timeout: float = 60) -> live.LiveState:
    def done():
        state = live.read(experiment.pk)
        return state if state.finished else None

    return wait_for(done, timeout, interval=0.2, message=f"experiment {experiment.pk} ({experiment.preset}) to finish")


def wait_state(experiment: Experiment, predicate, timeout: float = 30, message: str = "state") -> live.LiveState:
    def check():
        state = live.read(experiment.pk)
        return state if predicate(state) else None

    return wait_for(check, timeout, interval=0.1, message=message)


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
