"""`log`: `partitions` streams per experiment, and a retry topic.

A message goes to partition (customer mod N). Each partition has one owner at a time (a lease),
which reads from its committed offset, works, then commits. A failure either retries in place,
stalling the partition (`on_failure=block`: head-of-line blocking, order kept), or parks the message
on the run's delayed retry topic so the partition moves on (`retry_topic`: order given up). The
retry topic has one owner too, under its own lease. Owners follow the live consumers: when one dies
or joins, its partitions move once the old lease runs out (a rebalance).
"""

import json
import time

from redis import Redis

from prepsite.redis_conn import get_redis
from sandbox.delivery.base import order_lesson
from sandbox.delivery.consumed import (
    LEASE_MS,
    SESSION_S,
    ConsumedModel,
    Delivery,
    commit,
    context_of,
    partition_of,
)
from sandbox.engine import live
from sandbox.engine.presets import DEFAULTS

LEASE_S = LEASE_MS / 1000

# Take or keep a lease: 1 renewed (ours), 2 newly taken, 0 someone else holds it.
_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 2 end
return 0
"""


def partition_lease(experiment_id: int, partition: int) -> str:
    return live.key(experiment_id, f"lease:{partition}")


def retry_topic_lease(experiment_id: int) -> str:
    return live.key(experiment_id, "lease:retry")


def partition_owner(names: list[str], experiment_id: int, partition: int) -> str | None:
    """Partitions go round the live consumers in slot order, each run starting at its own offset."""
    return names[(experiment_id + partition) % len(names)] if names else None


def retry_topic_owner(names: list[str], experiment_id: int) -> str | None:
    """The retry topic goes to the consumer before the run's first partition owner."""
    return names[(experiment_id + len(names) - 1) % len(names)] if names else None


class LogModel(ConsumedModel):
    name = "log"
    title = "partitioned log"
    choice = "Log: partitions by customer, committed offsets"
    panel_template = "sandbox/delivery/log.html"
    panel_title = "Partitions and consumers"
    lag_what = "messages behind per partition"
    lag_desc = (
        "Lag is what was produced to a partition and not yet committed, sampled every second; when a partition's "
        "consumer dies its lag climbs until another consumer takes it over, then drains."
    )
    parameters = ("partitions", "order_keys", "on_failure", "kill_consumer_at_s")
    compare_first = "rq"
    kill_effect = "its partitions move to the others once its lease runs out"

    def summary(self, params: dict) -> str:
        p = {**DEFAULTS, **params}
        failure = "retries in place (blocks its partition)" if p["on_failure"] == "block" else "parks on a retry topic"
        return f"{p['partitions']} partitions, {p['order_keys']} customers; a failed message {failure}"

    def partitions(self, params: dict) -> int:
        return int(params.get("partitions", 1))

    def lane_group(self, job: int, params: dict) -> int | None:
        return partition_of(job, params)

    def lag_labels(self, params: dict) -> list[str]:
        return [f"partition {p}" for p in range(self.partitions(params))]

    def stream_of(self, experiment_id: int, params: dict, job: int) -> tuple[str, int]:
        partition = partition_of(job, params)
        return live.key(experiment_id, f"log:{partition}"), partition

    def lease_keys(self, redis: Redis, experiment_id: int) -> list[str]:
        context = context_of(redis, experiment_id)
        count = self.partitions(context[0]) if context else 0
        return [*(partition_lease(experiment_id, p) for p in range(count)), retry_topic_lease(experiment_id)]

    # --- the consuming side (`consumer` is a sandbox.ops.consumers.Consumer)
    def turn(self, consumer, experiment_id: int, params: dict, run: str, names: list[str]) -> bool:
        """Every partition this consumer owns, then the retry topic if it owns that: one message each."""
        worked = False
        for partition in range(self.partitions(params)):
            lease = partition_lease(experiment_id, partition)
            if partition_owner(names, experiment_id, partition) != consumer.name:
                _release(consumer, lease)
            elif _take(consumer, lease, experiment_id, f"partition {partition}"):
                worked |= self._partition_turn(consumer, experiment_id, params, run, partition)
        lease = retry_topic_lease(experiment_id)
        if retry_topic_owner(names, experiment_id) != consumer.name:
            _release(consumer, lease)
        elif _take(consumer, lease, experiment_id, None):
            worked |= self._retry_topic_turn(consumer, experiment_id, params, run)
        return worked

    def _partition_turn(self, consumer, experiment_id: int, params: dict, run: str, partition: int) -> bool:
        redis, k = consumer.redis, lambda name: live.key(experiment_id, name)
        hold = redis.hget(k("hold"), str(partition))
        if hold and float(hold) > time.time():
            return False  # the head is waiting to be retried in place: the partition is blocked
        offset = (redis.hget(k("off"), str(partition)) or b"0-0").decode()
        stream = k(f"log:{partition}")
        entries = redis.xrange(stream, min=f"({offset}", count=1)
        if not entries:
            return False
        entry_id, fields = entries[0]
        budget = redis.hincrby(k("budget"), fields[b"job"].decode(), 1)
        entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        consumer.handle(Delivery(experiment_id, int(fields[b"job"]), entry, stream, partition, budget, params, run))
        return True

    def _retry_topic_turn(self, consumer, experiment_id: int, params: dict, run: str) -> bool:
        redis, topic = consumer.redis, live.key(experiment_id, "retryq")
        due = redis.zrangebyscore(topic, "-inf", time.time(), start=0, num=1)
        if not due:
            return False
        job = int(due[0])
        # Invisible while we work; if we die it comes back after the lease (at-least-once, like a queue).
        redis.zadd(topic, {str(job): time.time() + LEASE_S + SESSION_S})
        budget = redis.hincrby(live.key(experiment_id, "budget"), str(job), 1)
        consumer.handle(Delivery(experiment_id, job, "", topic, 0, budget, params, run, from_retry_topic=True))
        return True

    def beat_s(self, params: dict) -> float:
        """Renew well inside the lease: a third of it."""
        return min(1.0, LEASE_S / 3)

    def extend(self, consumer, d: Delivery) -> None:
        lease = (
            retry_topic_lease(d.experiment_id) if d.from_retry_topic else partition_lease(d.experiment_id, d.partition)
        )
        consumer.redis.set(lease, consumer.name, px=LEASE_MS)

    def retry_wait(self, redis: Redis, recorder: live.Recorder, d: Delivery) -> float:
        plan = json.loads(redis.hget(recorder.k("plan"), str(d.job)) or "[]")
        return float(plan[min(d.deliveries, len(plan)) - 1]) if plan else 1.0

    def retry(self, consumer, recorder: live.Recorder, d: Delivery, retry_at: float) -> None:
        """Park the message on the retry topic (the partition moves on), or hold the partition."""
        redis = consumer.redis
        if d.from_retry_topic or d.params.get("on_failure", DEFAULTS["on_failure"]) == "retry_topic":
            redis.zadd(recorder.k("retryq"), {str(d.job): retry_at})
            redis.expire(recorder.k("retryq"), live.TTL_SECONDS)
            if not d.from_retry_topic:
                self.done(consumer, d)  # parked: the partition moves on
        else:
            redis.hset(recorder.k("hold"), str(d.partition), retry_at)  # head-of-line: wait in place
            redis.expire(recorder.k("hold"), live.TTL_SECONDS)

    def done(self, consumer, d: Delivery) -> None:
        """Commit the partition's offset, or drop the message from the retry topic."""
        if d.from_retry_topic:
            consumer.redis.zrem(d.stream, str(d.job))
            return
        consumer.redis.hdel(live.key(d.experiment_id, "hold"), str(d.partition))
        commit(consumer.redis, d.experiment_id, d.partition, d.entry_id)

    # --- what Redis holds, and what the run teaches
    def redis_view(self, experiment_id: int, params: dict, redis: Redis | None = None) -> dict:
        """Uncommitted messages plus the retry topic, and what sits in the DLQ stream."""
        redis = redis or get_redis()
        k = lambda name: live.key(experiment_id, name)  # noqa: E731
        prod, done = redis.hgetall(k("prod")), redis.hgetall(k("done"))
        uncommitted = sum(int(v) for v in prod.values()) - sum(int(v) for v in done.values())
        return {"pending": uncommitted + redis.zcard(k("retryq")), "dead_letter_stream": redis.xlen(k("dlqs"))}

    def lessons(self, p: dict, counters: dict, prediction) -> list[dict]:
        """Per-customer order, head-of-line blocking, rebalance."""
        if p["on_failure"] == "block" or prediction.fail == prediction.poison == 0:
            why = (
                "each customer's events share one partition and one consumer, and nothing is retried out of turn, so 0"
            )
        else:
            why = "a failed event is parked on the retry topic while its customer's next events go on, so possibly some"
        items = [order_lesson(p, counters, why)]
        per_partition = p["arrival_per_s"] / max(1, min(p["partitions"], p["order_keys"]))
        if p["on_failure"] == "block" and (prediction.poison > 0 or prediction.fail > 0):
            stall = sum(prediction.mean_waits)
            items.append(
                {
                    "topic": "Head-of-line blocking",
                    "expected": "a failing message at a partition's head is retried in place"
                    + (f" for about {stall:g} s of waits" if stall else "")
                    + f"; the {per_partition:g} messages/s arriving on that partition queue up behind it",
                    "observed": f"the worst partition fell {counters.get('max_lag', 0)} messages behind",
                }
            )
        if p["kill_consumer_at_s"] > 0:
            items.append(
                {
                    "topic": "Rebalance",
                    "expected": f"the killed consumer's partitions wait out its {LEASE_S:g} s lease before they move: "
                    f"about {per_partition:g}/s × {LEASE_S:g} s ≈ {per_partition * LEASE_S:.0f} messages of lag on "
                    "each, then a drain",
                    "observed": f"max lag {counters.get('max_lag', 0)}; {counters.get('crashes', 0)} message(s) "
                    f"redelivered after the crash, {counters.get('double_charges', 0)} double charges",
                }
            )
        return items


def _take(consumer, lease: str, experiment_id: int, what: str | None) -> bool:
    """Take or keep a lease; a partition taken over from another consumer is noted as a rebalance."""
    taken = consumer.redis.eval(_LEASE, 1, lease, consumer.name, LEASE_MS)
    if taken != 2:
        return taken == 1
    consumer.held.add(lease)
    owners = live.key(experiment_id, "owner")
    field = lease.rsplit(":", 1)[1]
    previous = consumer.redis.hget(owners, field)
    consumer.redis.hset(owners, field, consumer.name)
    consumer.redis.expire(owners, live.TTL_SECONDS)
    if what and previous and previous.decode() != consumer.name:
        live.Recorder(experiment_id, consumer.redis).note(
            "rebalanced", detail=f"{what} moved from {previous.decode()} to {consumer.name}"
        )
    return True


def _release(consumer, lease: str) -> None:
    if lease not in consumer.held:
        return
    consumer.held.discard(lease)
    if consumer.redis.get(lease) == consumer.name.encode():
        consumer.redis.delete(lease)
