"""RQ entry points of the workflow families. Thin: they take ids and call domain code."""

from rq import get_current_job

from sandbox.engine import experiments
from sandbox.engine.live import Recorder
from sandbox.workflows import run as workflow_run


def tick(experiment_id: int, limit_key: str, run: str, n: int) -> str:
    job = get_current_job()
    recorder = Recorder(experiment_id, job.connection)
    if workflow_run.tick(recorder, limit_key=limit_key, run=run, n=n):
        experiments.finish_if_done(experiment_id, job.connection)
        return "settled"
    return "continues"
