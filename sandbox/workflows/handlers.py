"""The request handler of each workflow family: the side effect the run's message job performs."""

from sandbox.engine import live
from sandbox.workflows import fanin, outbox, pipeline, saga


def handle(recorder: live.Recorder, job: int, *, attempt: int, params: dict, seed: int) -> str:
    if params["workflow"] == "fan_in":
        return fanin.start_batch(recorder, job, params=params)
    if params["workflow"] == "pipeline":
        return pipeline.front(recorder, job, params=params)
    if params["workflow"] == "priority":
        return "charged"  # the lesson is in when each job ran, not in what it did
    if params["workflow"] == "saga":
        return saga.run_saga(recorder, job, attempt=attempt, params=params, seed=seed)
    return outbox.place_order(recorder, job, attempt=attempt, params=params, seed=seed)
