"""`rq` (the default): RQ's list per queue and job hashes, a forking worker per job, retries scheduled by RQ.

RQ's storage itself is reached only through sandbox.engine.rq_storage.
"""

from datetime import timedelta

from redis import Redis
from rq import Retry
from rq.job import Callback
from rq.rate_limit import RateLimit

from prepsite.redis_conn import get_redis
from sandbox.delivery.base import order_lesson
from sandbox.engine import fairshare, live, rq_storage
from sandbox.models import Experiment
from sandbox.workflows import priority

REDRIVE_PER_SECOND = 20  # a redrive is itself a spike: release the DLQ in paced batches
RESULT_TTL = 600


def rate_keys(experiment: Experiment) -> list[str]:
    """The RQ rate-limit keys the run's jobs carry: the visitor's, and a reserved pool's low-priority key last."""
    visitor = fairshare.rate_key(experiment.limit_key)
    if fairshare.reserved_slots(experiment.params):
        return [visitor, fairshare.low_rate_key(experiment.limit_key)]
    return [visitor]


def job_rate_key(experiment: Experiment, job: int) -> str:
    """The key job `job` carries: an urgent job the visitor's, a low-priority one the reserved pool's if any."""
    keys = rate_keys(experiment)
    return keys[0] if priority.is_urgent(experiment.params, job) else keys[-1]


class RqModel:
    name = "rq"
    title = "RQ (one queue, retries)"
    choice = "RQ: a list per queue, retries scheduled by RQ"
    consumed = False
    panel_template = ""
    panel_title = ""
    lag_from_queue_depth = True
    lag_what = "queue depth (RQ has one queue, no partitions)"
    lag_desc = "RQ has one queue and no offsets: its line is the queue depth, sampled every second."
    parameters = ()
    compare_first = "log"
    kill_effect = ""
    stopped_before = "experiment stopped before this job ran"

    def __str__(self) -> str:
        return self.name

    def summary(self, params: dict) -> str:
        return "RQ workers; retries scheduled by RQ"

    def partitions(self, params: dict) -> int:
        return 1

    def lane_group(self, job: int, params: dict) -> int | None:
        return None

    def lag_labels(self, params: dict) -> list[str]:
        return ["queue depth"]

    def admit(self, experiment: Experiment, *, run: str, arrivals: dict[int, float], schedule: dict) -> None:
        """Enqueue every job on the lab queue, each arrival through RQ's scheduler when they are spaced."""
        params = experiment.params
        keys = rate_keys(experiment)  # the visitor's key, and a reserved pool's low-priority key
        limit_of = {key: RateLimit(key=key, concurrency=rq_storage.rate_limit_concurrency(get_redis(), key) or 1)
                    for key in keys}  # fmt: skip
        first = min(arrivals.values(), default=0)
        spaced = any(at > first for at in arrivals.values())
        queue = rq_storage.lab_queue()
        for job, at in arrivals.items():  # one call per job: RQ refuses rate-limited jobs in a pipeline
            options = dict(
                args=(experiment.pk, job, run),
                job_id=live.job_id_for(experiment.pk, job),
                job_timeout=params["timeout_s"],
                result_ttl=RESULT_TTL,
                failure_ttl=live.TTL_SECONDS,
                ttl=live.JOB_TTL_SECONDS,
                retry=Retry(max=params["max_retries"], interval=schedule[job]) if params["max_retries"] else None,
                on_failure=Callback("sandbox.ops.jobs.on_failure"),
                # Urgent jobs go to the front of the queue, under the visitor's key; low-priority ones take the
                # second key when the run reserves slots for urgent jobs.
                rate_limit=limit_of[job_rate_key(experiment, job)],
                at_front=priority.is_urgent(params, job),
            )
            if spaced:
                queue.enqueue_in(timedelta(seconds=at - first), "sandbox.ops.jobs.charge_order", **options)
            else:
                queue.enqueue("sandbox.ops.jobs.charge_order", **options)

    def stop(self, experiment: Experiment, jobs: range) -> list[int]:
        """Off RQ's schedule, the rate limiter and the queue at once; the taken jobs are deleted."""
        connection = get_redis()
        job_ids = [live.job_id_for(experiment.pk, job) for job in jobs]
        removed = rq_storage.take_off_queue(rq_storage.lab_queue(connection), rate_keys(experiment), job_ids)
        taken = [job for job, was in zip(jobs, removed, strict=True) if was]
        for job in taken:
            rq_storage.delete_job(connection, live.job_id_for(experiment.pk, job))
        return taken

    def redrive(self, experiment: Experiment, recorder: live.Recorder, jobs: list[int]) -> int:
        queue = rq_storage.lab_queue()
        redriven = 0
        for job in jobs:
            rate_key = job_rate_key(experiment, job)
            if not recorder.claim_from_dlq(job):
                continue  # someone else's click got there first
            job_id = live.job_id_for(experiment.pk, job)
            if not rq_storage.failure_settled(queue, rate_key, job_id):
                recorder.return_to_dlq(job)  # RQ has not filed it yet: leave it for the next click
                recorder.note("redrive_skipped", job, detail="RQ was still filing it as failed; redrive it again")
                continue
            retries, delay_s = experiment.params["max_retries"], redriven // REDRIVE_PER_SECOND
            if not rq_storage.requeue_failed(queue, job_id, retries=retries, delay_s=delay_s):
                recorder.note("redrive_skipped", job, detail="job expired or no longer in the DLQ")
                continue
            recorder.redriven(job)
            redriven += 1
        return redriven

    def discard(self, experiment: Experiment, recorder: live.Recorder, jobs: list[int]) -> int:
        queue = rq_storage.lab_queue()
        discarded = 0
        for job in jobs:
            rate_key = job_rate_key(experiment, job)
            if not recorder.claim_from_dlq(job):
                continue
            job_id = live.job_id_for(experiment.pk, job)
            if not rq_storage.failure_settled(queue, rate_key, job_id):
                recorder.return_to_dlq(job)  # deleting it now would let RQ's filing bring it back
                continue
            rq_storage.discard_failed(queue, job_id)
            recorder.discarded(job)
            discarded += 1
        return discarded

    def redis_view(self, experiment_id: int, params: dict, redis: Redis | None = None) -> dict:
        """The jobs of the run RQ has filed in its failed registry (the DLQ)."""
        prefix = live.job_id_for(experiment_id, "")
        failed = rq_storage.failed_job_ids(rq_storage.lab_queue(redis))
        return {"failed_registry": {int(job_id.removeprefix(prefix)) for job_id in failed if job_id.startswith(prefix)}}

    def lessons(self, p: dict, counters: dict, prediction) -> list[dict]:
        if not counters.get("order_violations"):
            return []
        why = (
            "competing consumers and retries can apply a customer's later event before an earlier one, so possibly some"
        )
        return [order_lesson(p, counters, why)]
