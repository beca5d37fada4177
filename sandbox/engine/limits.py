"""What the shared Lab lets one visitor do right now; each refusal is a LimitExceeded (HTTP 429).

Per-visitor limits count against `prepsite.visitor.limit_key`: the account, else the client address
(a fresh cookie is free, an address is not). Global budgets bound what all visitors together may put
on the shared workers. Static bounds of one run (size, horizon, worker-seconds) are form validation
in sandbox.params, so they answer 400 before anything here runs.
"""

from prepsite.ratelimit import allow
from prepsite.visitor import CLI_ANON_ID
from sandbox.engine import live
from sandbox.engine.budget import MAX_WORKER_SECONDS, admitted_jobs, children_per_message, worst_case_worker_seconds
from sandbox.models import Experiment

CLI_KEY = f"cli:{CLI_ANON_ID}"
ACTIVE_PER_VISITOR = 3
STARTS_PER_MINUTE = 10
REDRIVES_PER_MINUTE = 20
GLOBAL_STARTS_PER_MINUTE = 60  # many addresses (or accounts) together
GLOBAL_RUNNING = 40  # experiments running at once, all visitors
KILLS_PER_MINUTE = 6  # a stream/log consumer serves every visitor's runs
GLOBAL_KILLS_PER_MINUTE = 30
GLOBAL_OPEN_JOBS = 5000  # jobs all running experiments may still run (queued, scheduled, held back, duplicates)


class LimitExceeded(Exception):
    """A shared-lab limit; shown to the visitor with HTTP 429."""


def check_start(limit_key: str, params: dict) -> None:
    if limit_key != CLI_KEY:
        running = Experiment.objects.active().filter(limit_key=limit_key).count()
        if running >= ACTIVE_PER_VISITOR:
            raise LimitExceeded(
                f"You already have {running} experiments running (the limit is {ACTIVE_PER_VISITOR}); "
                "wait for one to finish or stop it."
            )
        if not allow("lab-start", limit_key, limit=STARTS_PER_MINUTE, window_s=60, fail_open=False):
            raise LimitExceeded(f"At most {STARTS_PER_MINUTE} experiments a minute; try again shortly.")
    if not allow("lab-start", "everyone", limit=GLOBAL_STARTS_PER_MINUTE, window_s=60, fail_open=False):
        raise LimitExceeded("The shared lab is taking many new experiments right now; try again in a minute.")
    active = list(Experiment.objects.active().values_list("pk", flat=True))
    if len(active) >= GLOBAL_RUNNING:
        raise LimitExceeded(f"{len(active)} experiments are running in the shared lab; try again in a minute.")
    open_jobs = live.open_jobs(active)
    wanted = round(admitted_jobs(params) * (1 + params["duplicate_rate"] + children_per_message(params)))
    if open_jobs + wanted > GLOBAL_OPEN_JOBS:
        raise LimitExceeded(
            f"The shared lab has {open_jobs} jobs still to run (the limit is {GLOBAL_OPEN_JOBS}); "
            "try a smaller run or again in a minute."
        )


def check_redrive(experiment: Experiment, jobs: int, limit_key: str) -> float:
    """Refuse a redrive past the experiment's worker-time budget; returns the worker-seconds it asks for."""
    if limit_key != CLI_KEY and not allow(
        "lab-redrive", limit_key, limit=REDRIVES_PER_MINUTE, window_s=60, fail_open=False
    ):
        raise LimitExceeded(f"At most {REDRIVES_PER_MINUTE} redrives a minute; the DLQ is not going anywhere.")
    cost = worst_case_worker_seconds({**experiment.params, "duplicate_rate": 0}, jobs=jobs)
    spent = live.Recorder(experiment.pk).charge_budget(0)
    if spent + cost > MAX_WORKER_SECONDS:
        raise LimitExceeded(
            f"Redriving {jobs} jobs could use {cost:,.0f} more worker-seconds; this experiment has used "
            f"{spent:,.0f} of its {MAX_WORKER_SECONDS}. Discard some, or start a new run."
        )
    return cost


def check_kill(limit_key: str) -> None:
    """Killing a shared consumer pauses everyone's stream and log runs for a few seconds: bounded."""
    if not allow("lab-kill", limit_key, limit=KILLS_PER_MINUTE, window_s=60, fail_open=False):
        raise LimitExceeded(
            f"At most {KILLS_PER_MINUTE} consumer kills a minute; watch this one's partitions move first."
        )
    if not allow("lab-kill", "everyone", limit=GLOBAL_KILLS_PER_MINUTE, window_s=60, fail_open=False):
        raise LimitExceeded("Many consumers were killed in the shared lab this minute; try again in a minute.")
