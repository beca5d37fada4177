"""Every Redis key the Lab writes, in one place (RQ's own keys live in sandbox/engine/rq_storage.py).

Keys of one experiment are `lab:exp:<id>:<name>`; sandbox.engine.live reads and writes them, the delivery
models add their streams, offsets and leases. A few keys are global: the consumer group's members,
the delivery schedule, the janitor's heartbeat, the watched runs.
"""

from sandbox.engine.budget import MAX_JOBS, MAX_PARTITIONS

PREFIX = "lab:"

# ---------------------------------------------------------------- global keys
ACTIVE = "lab:delivery:active"  # experiment id -> model, while its messages may still move
DELAYED = "lab:delivery:delayed"  # "E:job" -> when it arrives (arrivals spread over time)
WAKE_MOVER = "lab:delivery:wake"  # a token wakes the arrivals' mover: a run was admitted or redriven
MEMBERS = "lab:consumers"  # consumer name -> last heartbeat
MEMBER_INFO = "lab:consumers:info"  # consumer name -> {"pid", "slot", "doing", "run", "killed_for"}
DYING = "lab:consumers:dying"  # consumer name -> until when it counts as dying (a kill was granted)
CONSUMER_SHARES = "lab:consumers:shares"  # visitor's rate key -> how many consumers may work their messages at once


def consumers_busy(visitor_rate_key: str) -> str:
    """The consumers working one visitor's messages right now (the consumers' fair share)."""
    return f"lab:consumers:busy:{visitor_rate_key}"


START_LOCK = "lab:start-lock"  # held while a start checks the caps and admits its runs
JANITOR_BEAT = "lab:janitor:beat"  # when some janitor last finished a pass
WATCHED = "lab:watched"  # experiment id -> when a page last polled it (the renderer draws these)
WAKE_RENDERER = "lab:renderer:wake"  # a token wakes the idle renderer: a page opened a run


def consumer_wake(name: str) -> str:
    """A token wakes this consumer from its idle wait: a run became active."""
    return f"lab:consumers:wake:{name}"


def consumer_kill(name: str) -> str:
    """Runs whose visitors asked this consumer to die."""
    return f"lab:consumer:kill:{name}"


def job_beat(job_id: str) -> str:
    """A running job's progress beat (the janitor's second witness besides its worker's heartbeat)."""
    return f"lab:beat:{job_id}"


# ---------------------------------------------------------------- one experiment's keys
# The record (sandbox.engine.live): counters, metadata, events, per-second buckets, job state, locks, flags.
RECORD = (
    "params", "c", "meta", "ev", "ts", "enq", "plan", "attempt_no", "run", "sched", "retry_hist", "term", "lat",
    "dlq", "redelivered", "flag:stop", "flag:fixed", "redrive_lock", "render_lock", "render:latest", "order",
    "at_rest",
)  # fmt: skip
# The stream and log delivery models (sandbox.delivery): stream, DLQ stream, retry topic, offsets, lag.
DELIVERY = (
    "q",
    "dlqs",
    "retryq",
    "off",
    "prod",
    "done",
    "maxlag",
    "owner",
    "hold",
    "budget",
    "lease:retry",
    "flag:killed",
)
# The workflow families (sandbox.workflows): the broker stream, the consumer's position, the relay's passes; a
# pipeline's stage queues, their consumers' flags and the queues' peaks (sandbox.workflows.pipeline.KEYS).
WORKFLOW = (
    "wf:bus", "wf:consumed", "wf:pass", "wf:relay_crashes", "wf:dup", "wf:limit",
    "pl:q2", "pl:q3", "pl:busy", "pl:parked", "pl:seen", "pl:max", "pl:ts", "pl:seq",
)  # fmt: skip
PER_PARTITION = ("log:{}", "lease:{}")  # one of each per log partition
PER_JOB = ("marks:{}",)  # one per job: its attempt marks

KEY_NAMES = (*RECORD, *DELIVERY, *WORKFLOW, *(name.format(p) for name in PER_PARTITION for p in range(MAX_PARTITIONS)))
EVERY_NAME = (*KEY_NAMES, *(name.format(job) for name in PER_JOB for job in range(1, MAX_JOBS + 1)))


def experiment(experiment_id: int, name: str) -> str:
    return f"lab:exp:{experiment_id}:{name}"


def job_id_for(experiment_id: int, job_index: int) -> str:
    """RQ job id (and log label) of job `job_index` of an experiment."""
    return f"lab-{experiment_id}-{job_index}"


def parse_job_id(job_id: str) -> tuple[int, int] | None:
    parts = job_id.split("-")
    if len(parts) != 3 or parts[0] != "lab" or not all(p.isascii() and p.isdigit() for p in parts[1:]):
        return None
    return int(parts[1]), int(parts[2])
