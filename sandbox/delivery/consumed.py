"""What the consumed models (stream and log) share: consumer-group membership, the delayed-arrival
mover's publishing, leases' timing, and a base class for the parts both models do alike.

Consumers are real processes (`manage.py lab_consumers`, sandbox/ops/consumers.py); they serve
every running experiment of both models, one message per experiment per turn, so no run can starve
another. Each model says how it takes its turn, extends its lease, acknowledges and retries.
"""

import json
import re
import time
from dataclasses import dataclass

from redis import Redis

from prepsite.redis_conn import add_wake, get_redis
from sandbox.engine import fairshare, keys, live

GROUP = "lab"
ACTIVE, DELAYED, MEMBERS, MEMBER_INFO = keys.ACTIVE, keys.DELAYED, keys.MEMBERS, keys.MEMBER_INFO
SESSION_S = 3.0  # a consumer silent this long has left the group
LEASE_MS = 3000  # a partition's owner renews this while it works; a dead owner's lease runs out
CONSUMER_NAME = re.compile(r"c([0-9]{1,2})-([0-9]{1,10})")  # consumer_name(slot, pid)


def consumer_name(slot: int, pid: int) -> str:
    return f"c{slot}-{pid}"


def consumer_slot(name: str) -> int:
    match = CONSUMER_NAME.fullmatch(name)
    return int(match.group(1)) if match else 0


def kill_key(name: str) -> str:
    return keys.consumer_kill(name)


@dataclass
class Delivery:
    """One message handed to one consumer."""

    experiment_id: int
    job: int
    entry_id: str
    stream: str
    partition: int  # the stream is partition 0; a message from the log's retry topic keeps 0 too
    deliveries: int  # how many times this entry has been handed out, this one included
    params: dict
    run: str
    from_retry_topic: bool = False


def partition_of(job: int, params: dict) -> int:
    """The partition of a message: its customer number mod N. A hash of a real key spreads thousands of
    keys evenly; with the Lab's handful of customers, mod gives that even spread without collisions."""
    order_key, _ = live.order_of(job, params)
    return order_key % max(1, int(params.get("partitions", 1)))


# ---------------------------------------------------------------- producing


# Append message `job` to a partition (or the stream, partition 0) and track the partition's lag:
# produced minus committed, its maximum, and a per-second sample for the lag chart. Moving an arrival off the
# delivery schedule (KEYS[6], member ARGV[6]) is the same step, taken last: XADD is the first write, so when
# Redis is full it refuses the whole move and the arrival stays scheduled for the next tick (it was taken off
# first, and lost for good). 0 when another mover moved it already.
_PUBLISH = """
if KEYS[6] and ARGV[6] ~= '' and not redis.call('ZSCORE', KEYS[6], ARGV[6]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'job', ARGV[2], 'run', ARGV[3])
local produced = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local lag = produced - tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if lag > tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0') then redis.call('HSET', KEYS[4], ARGV[1], lag) end
redis.call('HSET', KEYS[5], ARGV[5] .. ':lag' .. ARGV[1], lag)
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
if ARGV[6] ~= '' then redis.call('ZREM', KEYS[6], ARGV[6]) end
return 1
"""

# Commit: the partition's offset moves past `id` and its lag shrinks by one. With a stream (KEYS[5]) the
# acknowledgement is the same step, after the first write: a full Redis refuses that write and so the whole
# step (the message stays pending and is delivered again), instead of taking the XACK and refusing the lag's
# update, which left the run's lag at 1 for ever.
_COMMIT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if KEYS[5] and redis.call('XACK', KEYS[5], ARGV[5], ARGV[2]) == 0 then return false end
local done = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local lag = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0') - done
redis.call('HSET', KEYS[4], ARGV[4] .. ':lag' .. ARGV[1], lag)
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return lag
"""


def publish(
    redis: Redis, experiment_id: int, stream: str, partition: int, job: int, run: str, *, scheduled: bool = False
) -> bool:
    """Publish message `job`; scheduled: move it off the delivery schedule in the same step (False when
    another mover already did)."""
    k = lambda name: live.key(experiment_id, name)  # noqa: E731
    member = f"{experiment_id}:{job}" if scheduled else ""
    keys = (stream, k("prod"), k("done"), k("maxlag"), k("ts"), DELAYED)
    return bool(redis.eval(_PUBLISH, 6, *keys, partition, job, run, live.TTL_SECONDS, int(time.time()), member))


def commit(redis: Redis, experiment_id: int, partition: int, entry_id: str, *, ack_stream: str = "") -> None:
    """Commit `entry_id` on `partition`; ack_stream: acknowledge it in that stream's group in the same step
    (only the first acknowledgement moves the lag)."""
    k = lambda name: live.key(experiment_id, name)  # noqa: E731
    keys = (k("off"), k("done"), k("prod"), k("ts"), *((ack_stream,) if ack_stream else ()))
    redis.eval(_COMMIT, len(keys), *keys, partition, entry_id, live.TTL_SECONDS, int(time.time()), GROUP)


def context_of(redis: Redis, experiment_id: int) -> tuple[dict, str] | None:
    raw, run = redis.get(live.key(experiment_id, "params")), redis.hget(live.key(experiment_id, "meta"), "run")
    if raw is None:
        return None
    return json.loads(raw)["params"], (run or b"").decode()


def unschedule(experiment_id: int, jobs) -> list[int]:
    """Take arrivals that have not happened yet off the schedule (stopping a run); returns them."""
    redis = get_redis()
    pipe = redis.pipeline(transaction=False)
    for job in jobs:
        pipe.zrem(DELAYED, f"{experiment_id}:{job}")
    pipe.delete(live.key(experiment_id, "hold"))
    removed = pipe.execute()[:-1]
    return [job for job, n in zip(jobs, removed, strict=True) if n]


# ---------------------------------------------------------------- membership


def members(redis: Redis, now: float | None = None) -> list[str]:
    """Live consumers, in slot order (assignment is stable while nobody joins or leaves)."""
    fresh = redis.zrangebyscore(MEMBERS, (now or time.time()) - SESSION_S, "+inf")
    names = [name.decode() for name in fresh]
    return sorted(names, key=lambda name: (consumer_slot(name), name))


def wake(redis: Redis) -> None:
    """A run became active: wake the arrivals' mover and every consumer from their idle waits. With nothing
    active they block on these keys (a second at a time, to beat) instead of polling."""
    pipe = redis.pipeline(transaction=False)
    for key in [keys.WAKE_MOVER, *map(keys.consumer_wake, members(redis))]:
        add_wake(pipe, key)
    pipe.execute()


def consumers(redis: Redis | None = None) -> list[dict]:
    """The live consumers, for the live view: name, pid, and what each is doing."""
    redis = redis or get_redis()
    names = members(redis)
    info = redis.hmget(MEMBER_INFO, names) if names else []
    return [{"name": name, **json.loads(raw or "{}")} for name, raw in zip(names, info, strict=True)]


def partition_table(experiment_id: int, partitions: int, redis: Redis | None = None) -> list[dict]:
    """Which consumer owns each partition of a run now, and its lag (a stream is one partition)."""
    redis = redis or get_redis()
    k = lambda name: live.key(experiment_id, name)  # noqa: E731
    pipe = redis.pipeline()
    pipe.hgetall(k("prod"))
    pipe.hgetall(k("done"))
    pipe.hgetall(k("maxlag"))
    for partition in range(partitions):
        pipe.get(k(f"lease:{partition}"))
    prod, done, maxlag, *leases = pipe.execute()
    number = lambda table, p: int(table.get(str(p).encode(), 0))  # noqa: E731
    return [
        {
            "partition": p,
            "owner": (leases[p] or b"").decode() or None,
            "lag": number(prod, p) - number(done, p),
            "max_lag": number(maxlag, p),
            "produced": number(prod, p),
        }
        for p in range(partitions)
    ]


# ---------------------------------------------------------------- fair share of the consumers


def share_consumers(redis: Redis, visitors: set[str]) -> dict[str, int]:
    """Share the live consumers between `visitors` (the limit keys of everyone with a running stream/log run),
    max-min fair as RQ's workers are (sandbox.engine.fairshare.shares): with three or more consumers nobody
    holds all of them, so a newcomer's message never waits behind a hog's ten-second messages. Returns the
    shares by visitor rate key."""
    alive = len(members(redis))
    wanted = {fairshare.rate_key(limit_key): alive for limit_key in visitors}
    granted = fairshare.shares(wanted, alive) if wanted else {}
    pipe = redis.pipeline()
    pipe.delete(keys.CONSUMER_SHARES)
    if granted:
        pipe.hset(keys.CONSUMER_SHARES, mapping=granted)
    pipe.execute()
    return granted


# A consumer takes one of its visitor's slots before it takes a message of theirs, and gives it back after.
# Slots of consumers that left the group (killed mid-message) are freed here, not leaked.
# KEYS: the visitor's busy set, members, shares; ARGV: visitor rate key, consumer, now, session_s
TAKE_SLOT = """
for _, holder in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local beat = redis.call('ZSCORE', KEYS[2], holder)
  if not beat or tonumber(beat) < tonumber(ARGV[3]) - tonumber(ARGV[4]) then redis.call('SREM', KEYS[1], holder) end
end
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 1 then return 1 end
local share = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '1')
if redis.call('SCARD', KEYS[1]) >= share then return 0 end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], 600)
return 1
"""


def take_slot(redis: Redis, visitor: str, consumer: str) -> bool:
    """May `consumer` work a message of `visitor` (a rate key) now, within the visitor's share?"""
    busy = keys.consumers_busy(visitor)
    return bool(
        redis.eval(TAKE_SLOT, 3, busy, MEMBERS, keys.CONSUMER_SHARES, visitor, consumer, time.time(), SESSION_S)
    )


def give_slot(redis: Redis, visitor: str, consumer: str) -> None:
    redis.srem(keys.consumers_busy(visitor), consumer)


# Delete a lease only while the dead consumer still holds it (it may have run out and been taken).
RELEASE_IF_HELD = """
local released = 0
for _, lease in ipairs(KEYS) do
  if redis.call('GET', lease) == ARGV[1] then redis.call('DEL', lease); released = released + 1 end
end
return released
"""


# ---------------------------------------------------------------- the shared half of a model


class ConsumedModel:
    """Admission, stop, redrive and discard as the stream and the log both do them; the consuming
    side (turn, extend, retry, acknowledge) is each model's own."""

    name = ""
    consumed = True
    lag_from_queue_depth = False
    stopped_before = "experiment stopped before this message arrived"

    def __str__(self) -> str:
        return self.name

    def partitions(self, params: dict) -> int:
        return 1

    def stream_of(self, experiment_id: int, params: dict, job: int) -> tuple[str, int]:
        """(stream key, partition) a message is published to."""
        raise NotImplementedError

    def prepare(self, redis: Redis, experiment_id: int) -> None:
        """Create what must exist before the first message arrives."""

    def lease_keys(self, redis: Redis, experiment_id: int) -> list[str]:
        """Leases a consumer may hold for the run (handed back when it dies)."""
        return []

    def admit(self, experiment, *, run: str, arrivals: dict[int, float], schedule: dict) -> None:
        """Make the run's stream or partitions and schedule every arrival (the mover publishes each)."""
        redis = get_redis()
        self.prepare(redis, experiment.pk)
        pipe = redis.pipeline()
        pipe.hset(ACTIVE, str(experiment.pk), self.name)
        pipe.hset(live.key(experiment.pk, "meta"), mapping={"model": self.name, "visitor": experiment.limit_key})
        if arrivals:
            pipe.zadd(DELAYED, {f"{experiment.pk}:{job}": at for job, at in arrivals.items()})
        pipe.execute()
        wake(redis)

    def at_rest(self, redis: Redis, experiment_id: int, params: dict) -> bool:
        """Nothing of the run can move any more: no arrival still to come, nothing unread, unacknowledged or
        parked on a retry topic (the janitor ends such a run if its outcomes still do not add up)."""
        if any(row["lag"] > 0 for row in partition_table(experiment_id, self.partitions(params), redis)):
            return False
        if self.redis_view(experiment_id, params, redis)["pending"]:
            return False
        return not any(True for _ in redis.zscan_iter(DELAYED, match=f"{experiment_id}:*", count=500))

    def publish(
        self, redis: Redis, experiment_id: int, params: dict, job: int, run: str, *, scheduled: bool = False
    ) -> bool:
        stream, partition = self.stream_of(experiment_id, params, job)
        return publish(redis, experiment_id, stream, partition, job, run, scheduled=scheduled)

    def stop(self, experiment, jobs: range) -> list[int]:
        return unschedule(experiment.pk, jobs)

    def redrive(self, experiment, recorder: live.Recorder, jobs: list[int]) -> int:
        """Publish each dead-lettered message again (a new entry, a fresh delivery budget)."""
        redis = get_redis()
        redriven = 0
        for job in jobs:
            if not recorder.claim_from_dlq(job):
                continue
            recorder.redriven(job)
            context = context_of(redis, experiment.pk)
            if context is not None:
                redis.hdel(live.key(experiment.pk, "budget"), str(job))
                redis.hset(ACTIVE, str(experiment.pk), self.name)
                self.publish(redis, experiment.pk, experiment.params, job, context[1])
            redriven += 1
        if redriven:
            wake(redis)
        return redriven

    def discard(self, experiment, recorder: live.Recorder, jobs: list[int]) -> int:
        discarded = 0
        for job in jobs:
            if recorder.claim_from_dlq(job):
                recorder.discarded(job)
                discarded += 1
        return discarded

    def dead_letter(self, redis: Redis, recorder: live.Recorder, d: Delivery, error: str) -> None:
        redis.xadd(recorder.k("dlqs"), {"job": d.job, "error": error[:200]})
        redis.expire(recorder.k("dlqs"), live.TTL_SECONDS)
