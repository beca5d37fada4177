"""RQ entry points of the workflow families. Thin: they take ids and call domain code."""

from rq import get_current_job

from sandbox.engine import experiments
from sandbox.engine.live import Recorder
from sandbox.workflows import fanin, pipeline
from sandbox.workflows import run as workflow_run


def tick(experiment_id: int, limit_key: str, run: str, n: int) -> str:
    job = get_current_job()
    recorder = Recorder(experiment_id, job.connection)
    if workflow_run.tick(recorder, limit_key=limit_key, run=run, n=n):
        experiments.finish_if_done(experiment_id, job.connection)
        return "settled"
    return "continues"


def fan_in_child(experiment_id: int, rate_key: str, batch: int, child: int) -> str:
    job = get_current_job()
    found = workflow_run.context(job.connection, experiment_id)
    if found is None:
        return "expired"
    params, seed = found
    attempt = 1 + len(job.retry_intervals or ()) - (job.retries_left or 0)
    recorder = Recorder(experiment_id, job.connection)
    return fanin.run_child(
        recorder, params=params, seed=seed, rate_key=rate_key, batch=batch, child=child, attempt=attempt
    )


def fan_in_child_failed(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ calls this on every failed attempt, before it decrements retries_left: 0 left means dead."""
    if not job.retries_left:
        experiment_id, _, batch, child = job.args
        fanin.child_dead(experiment_id, batch, child)


def fan_in_final(experiment_id: int, batch: int) -> str:
    fanin.run_final(experiment_id, batch)
    return "final"


def pipeline_stage(experiment_id: int, stage: int) -> str:
    job = get_current_job()
    found = workflow_run.context(job.connection, experiment_id)
    if found is None:
        return "expired"
    params, seed = found
    return pipeline.run_stage(job.connection, experiment_id, stage, params=params, seed=seed)
