"""`stream`: one Redis stream per experiment and one consumer group.

Competing consumers read with XREADGROUP and acknowledge with XACK after the work. A message nobody
acknowledged is handed to another consumer by XAUTOCLAIM once it has been idle for
`visibility_timeout_s` (SQS's visibility timeout); its delivery count (XPENDING) sends it to the
dead-letter stream after `max_retries + 1` deliveries (SQS's maxReceiveCount). With `lease_extension`
on, the consumer re-claims its message every third of the timeout while working (SQS's
ChangeMessageVisibility), so a long job is not handed out twice.
"""

import math

from redis import Redis

from prepsite.redis_conn import get_redis
from sandbox.delivery.base import order_lesson
from sandbox.delivery.consumed import GROUP, ConsumedModel, Delivery, commit
from sandbox.engine import live
from sandbox.engine.presets import DEFAULTS


def visibility_timeout_s(params: dict) -> float:
    return float(params.get("visibility_timeout_s", DEFAULTS["visibility_timeout_s"]))


class StreamModel(ConsumedModel):
    name = "stream"
    title = "stream (consumer group)"
    choice = "Stream: consumer group, visibility timeout"
    panel_template = "sandbox/delivery/stream.html"
    panel_title = "The stream and its consumers"
    lag_what = "messages published and not yet acknowledged"
    lag_desc = (
        "Lag is what was published to the stream and not yet acknowledged, sampled every second: messages waiting "
        "plus messages a consumer holds. A message held past the visibility timeout is claimed by another consumer."
    )
    parameters = ("visibility_timeout_s", "lease_extension", "kill_consumer_at_s")
    compare_first = "rq"
    kill_effect = "another consumer claims its unacknowledged message after the visibility timeout"

    def summary(self, params: dict) -> str:
        p = {**DEFAULTS, **params}
        lease = "lease extended while working" if p["lease_extension"] == "on" else "no lease extension"
        return f"visibility timeout {p['visibility_timeout_s']:g} s, {lease}"

    def lane_group(self, job: int, params: dict) -> int | None:
        return None

    def lag_labels(self, params: dict) -> list[str]:
        return ["stream"]

    def stream_of(self, experiment_id: int, params: dict, job: int) -> tuple[str, int]:
        return live.key(experiment_id, "q"), 0

    def prepare(self, redis: Redis, experiment_id: int) -> None:
        redis.xgroup_create(live.key(experiment_id, "q"), GROUP, id="0", mkstream=True)
        redis.expire(live.key(experiment_id, "q"), live.TTL_SECONDS)

    # --- the consuming side (`consumer` is a sandbox.ops.consumers.Consumer)
    def turn(self, consumer, experiment_id: int, params: dict, run: str, names: list[str]) -> bool:
        """Claim a message idle past the visibility timeout, else read a new one; work it."""
        redis, stream = consumer.redis, live.key(experiment_id, "q")
        timeout_ms = int(visibility_timeout_s(params) * 1000)
        reply = redis.xautoclaim(stream, GROUP, consumer.name, timeout_ms, "0-0", count=1)
        claimed = [entry for entry in reply[1] if entry and entry[1]]
        if claimed:
            entry_id, fields = claimed[0]
            pending = redis.xpending_range(stream, GROUP, min=entry_id, max=entry_id, count=1)
            deliveries = pending[0]["times_delivered"] if pending else 2
            consumer.handle(_delivery(experiment_id, params, run, stream, entry_id, fields, deliveries), claimed=True)
            return True
        read = redis.xreadgroup(GROUP, consumer.name, {stream: ">"}, count=1)
        if not read or not read[0][1]:
            return False
        entry_id, fields = read[0][1][0]
        consumer.handle(_delivery(experiment_id, params, run, stream, entry_id, fields, 1), claimed=False)
        return True

    def beat_s(self, params: dict) -> float:
        """Renew well inside the lease: a third of the visibility timeout."""
        return min(1.0, visibility_timeout_s(params) / 3)

    def extend(self, consumer, d: Delivery) -> None:
        if d.params.get("lease_extension") == "on":
            consumer.redis.xclaim(d.stream, GROUP, consumer.name, 0, [d.entry_id], justid=True)

    def retry_wait(self, redis: Redis, recorder: live.Recorder, d: Delivery) -> float:
        return visibility_timeout_s(d.params)

    def retry(self, consumer, recorder: live.Recorder, d: Delivery, retry_at: float) -> None:
        """Nothing to do: the stream redelivers by itself, after the visibility timeout."""

    def done(self, consumer, d: Delivery) -> None:
        """Acknowledge and move the lag in one step; only the first ack moves the lag."""
        commit(consumer.redis, d.experiment_id, 0, d.entry_id, ack_stream=d.stream)

    # --- what Redis holds, and what the run teaches
    def redis_view(self, experiment_id: int, params: dict, redis: Redis | None = None) -> dict:
        """What is still pending in the group and what sits in the DLQ stream."""
        redis = redis or get_redis()
        k = lambda name: live.key(experiment_id, name)  # noqa: E731
        pending = redis.xpending(k("q"), GROUP)["pending"] if redis.exists(k("q")) else 0
        return {"pending": pending, "dead_letter_stream": redis.xlen(k("dlqs"))}

    def lessons(self, p: dict, counters: dict, prediction) -> list[dict]:
        longest = (p["duration_ms"] + p["duration_spread_ms"]) / 1000
        timeout = p["visibility_timeout_s"]
        extra = max(0, math.ceil(longest / timeout) - 1) if p["lease_extension"] == "off" else 0
        charges = (
            "idempotency on: 0 double charges"
            if p["idempotency"] == "on"
            else "idempotency off: each one charges again"
        )
        expected = (
            f"lease extension on: the consumer re-claims its message every {min(1.0, timeout / 3):.2g} s, "
            "so no message is handed out while it is worked on: 0 duplicates from the timeout"
            if p["lease_extension"] == "on"
            else f"an attempt takes up to {longest:g} s against a {timeout:g} s visibility timeout: "
            f"up to ⌈{longest:g} / {timeout:g}⌉ − 1 = {extra} more deliveries of each message while "
            f"it is still worked on (when a consumer is free to claim it), so up to {extra * prediction.admitted} "
            f"duplicates; {charges}"
        )
        return [
            {
                "topic": "Visibility timeout",
                "expected": expected,
                "observed": f"{counters.get('duplicates_delivered', 0)} delivered again, "
                f"{counters.get('double_charges', 0)} double charges, {counters.get('redeliveries', 0)} redeliveries in all",
            },
            order_lesson(
                p,
                counters,
                "competing consumers and retries can apply a customer's later event before an earlier one, so possibly some",
            ),
        ]


def _delivery(experiment_id, params, run, stream, entry_id, fields, deliveries) -> Delivery:
    entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return Delivery(experiment_id, int(fields[b"job"]), entry, stream, 0, deliveries, params, run)
