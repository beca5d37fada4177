"""The interface every delivery model implements (sandbox.delivery.MODELS holds one of each)."""

from typing import Any, Protocol

from redis import Redis

from sandbox.engine import live
from sandbox.engine.presets import DEFAULTS
from sandbox.models import Experiment


def model_name(params: dict) -> str:
    return params.get("model", DEFAULTS["model"])


class DeliveryModel(Protocol):
    """How messages are stored, handed out, acknowledged and retried. The fault plan, ledger, live
    record, limits and fair admission are shared; everything that differs between models is here."""

    name: str  # the `model` parameter's value
    title: str  # in a few words, for headers and choices
    choice: str  # the form's choice label
    consumed: bool  # served by the lab_consumers processes (else by RQ's workers)
    panel_template: str  # the live view's delivery panel ("" for none)
    panel_title: str  # its heading
    lag_from_queue_depth: bool  # no offsets: the lag chart draws the queue depth instead
    lag_what: str  # what its lag chart shows, after "#12 on <model>: "
    lag_desc: str  # the lag chart's description for screen readers
    parameters: tuple[str, ...]  # its own parameters (sandbox.params groups them under "Delivery model")
    compare_first: str  # the model to run the same preset on next: the one with most to teach
    kill_effect: str  # what happens to a run's messages when one of its consumers is killed
    stopped_before: str  # why a job taken off by a stop never ran

    def __str__(self) -> str: ...

    def summary(self, params: dict) -> str:
        """The run's model in a few words, for the live view's header."""

    def lag_labels(self, params: dict) -> list[str]:
        """One label per line of its lag chart."""

    def lane_group(self, job: int, params: dict) -> int | None:
        """The partition a job's lane is grouped under on the time axis (None: one queue, no groups)."""

    def admit(self, experiment: Experiment, *, run: str, arrivals: dict[int, float], schedule: dict) -> None:
        """Put every admitted message on its way (arrivals: job -> when it arrives)."""

    def stop(self, experiment: Experiment, jobs: range) -> list[int]:
        """Take the jobs that have not started off their way; returns those taken."""

    def redrive(self, experiment: Experiment, recorder: live.Recorder, jobs: list[int]) -> int:
        """Deliver dead-lettered jobs again with their whole retry budget; returns how many."""

    def discard(self, experiment: Experiment, recorder: live.Recorder, jobs: list[int]) -> int:
        """Drop dead-lettered jobs for good; returns how many."""

    def redis_view(self, experiment_id: int, params: dict, redis: Redis | None = None) -> dict[str, Any]:
        """What Redis itself holds for the run (the oracle the invariant tests check)."""

    def lessons(self, params: dict, counters: dict, prediction: Any) -> list[dict]:
        """The explanation's items this model teaches (expected beside observed)."""


def order_lesson(params: dict, counters: dict, why: str) -> dict:
    return {
        "topic": "Per-customer order",
        "expected": f"{params['order_keys']} customers; {why} order violations",
        "observed": f"{counters.get('order_violations', 0)} events applied after a later event of their customer",
    }


class ConsumedDeliveryModel(DeliveryModel, Protocol):
    """A model served by the lab_consumers processes (sandbox.ops.consumers): stream and log.
    `consumer` is the consumer process's Consumer (its redis, name, held leases and handle())."""

    def publish(
        self, redis: Redis, experiment_id: int, params: dict, job: int, run: str, *, scheduled: bool = False
    ) -> bool:
        """Put a message that has arrived on its stream or partition; scheduled: and take it off the delivery
        schedule in the same step (the delayed-arrival mover). False if another mover had moved it."""

    def at_rest(self, redis: Redis, experiment_id: int, params: dict) -> bool:
        """Nothing of the run can move any more (no arrival due, nothing unread, unacknowledged or parked)."""

    def turn(self, consumer: Any, experiment_id: int, params: dict, run: str, names: list[str]) -> bool:
        """Hand this consumer at most one message of the run per source it owns; True if it worked."""

    def beat_s(self, params: dict) -> float:
        """How often a consumer working a message renews its claim."""

    def extend(self, consumer: Any, delivery: Any) -> None:
        """Renew the claim on the message being worked (lease extension)."""

    def retry_wait(self, redis: Redis, recorder: live.Recorder, delivery: Any) -> float:
        """Seconds until a failed delivery is tried again."""

    def retry(self, consumer: Any, recorder: live.Recorder, delivery: Any, retry_at: float) -> None:
        """Arrange the retry of a failed delivery (redeliver, park, or hold the partition)."""

    def done(self, consumer: Any, delivery: Any) -> None:
        """Acknowledge: ack the entry, commit the offset, or drop it from the retry topic."""

    def dead_letter(self, redis: Redis, recorder: live.Recorder, delivery: Any, error: str) -> None:
        """Put a message that used its whole budget on the run's dead-letter stream."""

    def lease_keys(self, redis: Redis, experiment_id: int) -> list[str]:
        """Leases a consumer may hold for the run (handed back at once when it dies)."""
