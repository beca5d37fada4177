"""What one run may ask of the shared lab: its schedule horizon and its worst-case worker time."""

from sandbox.engine.retry_policy import backoff_ceiling

MAX_JOBS = 500
MAX_PARTITIONS = 8  # a log run's partitions (the live view has a colour for each)
# Every arrival and every worst-case retry of an experiment falls within this window. SQS caps a
# message's delay at 15 minutes for the same reason: past that it is a scheduled task, not a queue
# message, and a shared lab must not hold work (and everyone's capacity) for longer.
HORIZON_S = 15 * 60
MAX_WORKER_SECONDS = 900  # worst-case worker time one experiment may ask of the shared workers
# A workflow run (sandbox.workflows) also runs its relay/consumer tick, once a second, at most this often.
WORKFLOW_TICKS = 300
WORKFLOW_TICK_S = 0.2  # worker time charged per tick
MAX_FAN_OUT = 20  # a fan-in batch's children: real jobs, counted like messages


PIPELINE_STAGES = 2  # a pipeline's stages after the front: each item is one RQ job at each


def children_per_message(params: dict) -> float:
    """Jobs each admitted message adds besides itself: a fan-in batch's children, their duplicates included;
    a pipeline item's job at each later stage."""
    workflow = params.get("workflow", "none")
    if workflow == "pipeline":
        return float(PIPELINE_STAGES)
    if workflow != "fan_in":
        return 0.0
    return params.get("fan_out", 0) * (1 + params.get("child_duplicate_rate", 0.0))


def stage_seconds(params: dict) -> float:
    """Worker time one pipeline item may take at the later stages, every in-place retry at its slowest."""
    if params.get("workflow", "none") != "pipeline":
        return 0.0
    slowest = max(params.get("stage_ms", 0), params.get("slow_stage_ms", 0))
    return (params.get("stage_ms", 0) + slowest) / 1000 * (params["max_retries"] + 1)


def attempt_seconds(params: dict) -> float:
    """The longest one attempt can hold a worker: its work, or the timeout that kills it."""
    return min((params["duration_ms"] + params["duration_spread_ms"]) / 1000, params["timeout_s"])


def admitted_jobs(params: dict) -> int:
    return min(params["jobs"], params["queue_cap"])


def schedule_span_s(params: dict) -> float:
    """From the first arrival to the last possible end of the last job: arrivals, then every retry's
    longest wait and every attempt at its longest."""
    arrivals = (admitted_jobs(params) - 1) / params["arrival_per_s"] if params["arrival_per_s"] > 0 else 0.0
    waits = sum(
        backoff_ceiling(
            attempt=n, backoff=params["backoff"], base_s=params["backoff_base_s"], cap_s=params["backoff_cap_s"]
        )
        for n in range(1, params["max_retries"] + 1)
    )
    # A pipeline's stages have one consumer each: its last item may wait for every item at each of them.
    stages = admitted_jobs(params) * stage_seconds(params)
    return arrivals + waits + (params["max_retries"] + 1) * attempt_seconds(params) + stages


def worst_case_worker_seconds(params: dict, jobs: int | None = None) -> float:
    """Worker time the run (or `jobs` of its messages) may take: every attempt, every duplicate delivery."""
    messages = admitted_jobs(params) if jobs is None else jobs
    stages = messages * stage_seconds(params)
    if stages:  # a pipeline's later stages are timed by their own durations, not the front's
        deliveries = messages * (1 + params["duplicate_rate"])
        ticks = WORKFLOW_TICKS * WORKFLOW_TICK_S if jobs is None else 0
        return deliveries * (params["max_retries"] + 1) * attempt_seconds(params) + stages + ticks
    deliveries = messages * (1 + params["duplicate_rate"] + children_per_message(params))
    ticks = WORKFLOW_TICKS * WORKFLOW_TICK_S if jobs is None and params.get("workflow", "none") != "none" else 0
    return deliveries * (params["max_retries"] + 1) * attempt_seconds(params) + ticks
