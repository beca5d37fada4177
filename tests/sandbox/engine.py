"""The Lab's RQ engine run in this process, as rq's own tests run RQ.

A `SimpleWorker` drains the lab queue in burst mode, the scheduler's `enqueue_scheduled_jobs()` is
called directly, and the clock is time-machine's, standing still while jobs run: when nothing is
ready it jumps to the next scheduled job instead of the test waiting for it, so a run with a seed
produces the same schedule on a fast machine and a loaded one. (A job's own work still takes real
time: it is measured on the monotonic clock, which time-machine leaves alone.) Retries, backoff schedules, the DLQ, redrive,
idempotency, admission and accounting are the engine's own code paths; what is *not* exercised
here is anything whose subject is a process (a forked work-horse, SIGKILL, a dead worker, the
janitor, the stream/log consumer processes) — those tests keep the real pool (`rq_workers`).
"""

import time
from datetime import UTC, datetime

import time_machine
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler

from sandbox.engine import live, rq_storage
from sandbox.liveview.panels import render_pass
from sandbox.models import Experiment
from sandbox.ops.workers import RidesOutRedisFull


class QuietWorker(RidesOutRedisFull, SimpleWorker):
    """A SimpleWorker without the pubsub thread it starts for every burst: the Lab sends its workers no RQ
    commands, and joining that thread at each burst's end waited about half a second (measured: 10 s of
    the jitter lesson's 33)."""

    def subscribe(self) -> None:
        self.pubsub_thread = None

    def unsubscribe(self) -> None:
        pass


class InProcessLab:
    def __init__(self, traveller: time_machine.Traveller):
        self.clock = traveller
        self.queue = rq_storage.lab_queue()
        self.worker = QuietWorker([self.queue], connection=self.queue.connection, log_job_description=False)
        self.scheduler = RQScheduler([self.queue], connection=self.queue.connection)
        self.scheduler.prepare_registries([self.queue.name])
        self.registry = ScheduledJobRegistry(queue=self.queue)

    def advance(self, seconds: float) -> None:
        self.clock.shift(seconds)

    def step(self) -> bool:
        """Run everything that is due now; False when nothing ran and nothing is scheduled."""
        self.scheduler.enqueue_scheduled_jobs()
        ran = bool(self.queue.count)
        if ran:
            self.worker.work(burst=True, with_scheduler=False)
        return ran

    def next_due(self) -> float | None:
        """Unix time of the next scheduled job (a retry or a paced arrival), if any."""
        due = self.registry.connection.zrange(self.registry.key, 0, 0, withscores=True)
        return due[0][1] if due else None

    def run_until(self, predicate, *, max_steps: int = 2000) -> None:
        """Work and move the clock until predicate() holds; fail if the engine stalls first."""
        for _ in range(max_steps):
            if predicate():
                render_pass()  # as make run's renderer would: pages watching these runs see the result
                return
            if self.step():
                continue
            due = self.next_due()
            if due is None:
                raise AssertionError("the engine stalled: nothing queued, nothing scheduled, and the run not done")
            self.advance(max(0.0, due - time.time()) + 0.01)
        raise AssertionError(f"no end after {max_steps} steps")

    def finish(self, experiment: Experiment) -> live.LiveState:
        self.run_until(lambda: live.read(experiment.pk).finished)
        return live.read(experiment.pk)

    def finish_all(self, *runs: Experiment) -> list[live.LiveState]:
        self.run_until(lambda: all(live.read(run.pk).finished for run in runs))
        return [live.read(run.pk) for run in runs]


def frozen_start() -> datetime:
    """The next whole second: close to the real time, so Redis TTLs stay sensible, and on a boundary, so
    per-second histograms do not depend on where the real clock happened to be."""
    return datetime.fromtimestamp(int(time.time()) + 1, tz=UTC)
