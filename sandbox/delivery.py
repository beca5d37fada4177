"""Two more delivery models on the same Redis, beside RQ: a stream with a consumer group, and a log.

`stream`: one Redis stream per experiment and one consumer group. Competing consumers read with
XREADGROUP and acknowledge with XACK after the work. A message nobody acknowledged is handed to
another consumer by XAUTOCLAIM once it has been idle for `visibility_timeout_s` (SQS's visibility
timeout); its delivery count (XPENDING) sends it to the dead-letter stream after `max_retries + 1`
deliveries (SQS's maxReceiveCount). With `lease_extension` on, the consumer re-claims its message
every second while working (SQS's ChangeMessageVisibility), so a long job is not handed out twice.

`log`: `partitions` streams per experiment; a message goes to partition (customer mod N). Each
partition has one owner at a time (a lease), which reads from its committed offset, works, then
commits. A failure either retries in place, stalling the partition (`on_failure=block`: head-of-line
blocking, order kept), or parks the message on a delayed retry topic so the partition moves on
(`retry_topic`: order given up). Owners follow the live consumers: when one dies or joins, its
partitions move once the old lease runs out (a rebalance).

Consumers are real processes (`manage.py lab_consumers`); they serve every running experiment of
both models, one message per experiment per turn, so no run can starve another.
"""

import json
import time

from redis import Redis

from prepsite.redis_conn import get_redis
from sandbox import live
from sandbox.presets import DEFAULTS

MODELS = ("rq", "stream", "log")
GROUP = "lab"
ACTIVE = "lab:delivery:active"  # experiment id -> model, while its messages may still move
DELAYED = "lab:delivery:delayed"  # "E:job" -> when it arrives (arrivals spread over time)
MEMBERS = "lab:consumers"  # consumer name -> last heartbeat
MEMBER_INFO = "lab:consumers:info"  # consumer name -> {"pid", "slot", "doing", "run", "killed_for"}
SESSION_S = 3.0  # a consumer silent this long has left the group
LEASE_MS = 3000  # a partition's owner renews this while it works; a dead owner's lease runs out
RETRY_TOPIC = "r"  # the lease name of an experiment's retry topic


def model_of(params: dict) -> str:
    return params.get("model", DEFAULTS["model"])


def kill_key(name: str) -> str:
    return f"lab:consumer:kill:{name}"


def partition_of(job: int, params: dict) -> int:
    """The partition of a message: its customer number mod N. A hash of a real key spreads thousands of
    keys evenly; with the Lab's handful of customers, mod gives that even spread without collisions."""
    order_key, _ = live.order_of(job, params)
    return order_key % max(1, int(params.get("partitions", 1)))


# ---------------------------------------------------------------- producing


# Append message `job` to a partition (or the stream, partition 0) and track the partition's lag:
# produced minus committed, its maximum, and a per-second sample for the lag chart.
_PUBLISH = """
redis.call('XADD', KEYS[1], '*', 'job', ARGV[2], 'run', ARGV[3])
local produced = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local lag = produced - tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if lag > tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0') then redis.call('HSET', KEYS[4], ARGV[1], lag) end
redis.call('HSET', KEYS[5], ARGV[5] .. ':lag' .. ARGV[1], lag)
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
return lag
"""

# Commit: the partition's offset moves past `id` and its lag shrinks by one.
COMMIT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local done = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local lag = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0') - done
redis.call('HSET', KEYS[4], ARGV[4] .. ':lag' .. ARGV[1], lag)
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return lag
"""


def stream_key(experiment_id: int, params: dict, job: int) -> tuple[str, int]:
    if model_of(params) == "log":
        partition = partition_of(job, params)
        return live.key(experiment_id, f"log:{partition}"), partition
    return live.key(experiment_id, "q"), 0


def publish(redis: Redis, experiment_id: int, params: dict, job: int, run: str) -> None:
    k = lambda name: live.key(experiment_id, name)  # noqa: E731
    stream, partition = stream_key(experiment_id, params, job)
    now = int(time.time())
    keys = (stream, k("prod"), k("done"), k("maxlag"), k("ts"))
    redis.eval(_PUBLISH, 5, *keys, partition, job, run, live.TTL_SECONDS, now)


def admit(experiment_id: int, params: dict, arrivals: dict[int, float], run: str) -> None:
    """Make the experiment's stream (and group) or partitions, and schedule every arrival."""
    redis = get_redis()
    if model_of(params) == "stream":
        redis.xgroup_create(live.key(experiment_id, "q"), GROUP, id="0", mkstream=True)
        redis.expire(live.key(experiment_id, "q"), live.TTL_SECONDS)
    pipe = redis.pipeline()
    pipe.hset(ACTIVE, str(experiment_id), model_of(params))
    pipe.hset(live.key(experiment_id, "meta"), "model", model_of(params))
    if arrivals:
        pipe.zadd(DELAYED, {f"{experiment_id}:{job}": at for job, at in arrivals.items()})
    pipe.execute()


def release_due(redis: Redis, now: float | None = None, limit: int = 200) -> int:
    """Move arrivals whose time has come onto their stream or partition (the delayed-delivery mover)."""
    due = redis.zrangebyscore(DELAYED, "-inf", now or time.time(), start=0, num=limit)
    moved = 0
    contexts: dict[int, tuple[dict, str] | None] = {}
    for member in due:
        if not redis.zrem(DELAYED, member):
            continue  # another mover took it
        experiment_id, job = (int(part) for part in member.decode().split(":"))
        if experiment_id not in contexts:
            contexts[experiment_id] = context_of(redis, experiment_id)
        if contexts[experiment_id] is None:
            continue  # the run expired
        params, run = contexts[experiment_id]
        publish(redis, experiment_id, params, job, run)
        moved += 1
    return moved


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


def redrive(experiment_id: int, params: dict, job: int) -> None:
    """Publish a dead-lettered message again, with a fresh delivery budget."""
    redis = get_redis()
    context = context_of(redis, experiment_id)
    if context is None:
        return
    redis.hdel(live.key(experiment_id, "budget"), str(job))
    redis.hset(ACTIVE, str(experiment_id), model_of(params))
    publish(redis, experiment_id, params, job, context[1])


# ---------------------------------------------------------------- membership


def members(redis: Redis, now: float | None = None) -> list[str]:
    """Live consumers, in slot order (assignment is stable while nobody joins or leaves)."""
    fresh = redis.zrangebyscore(MEMBERS, (now or time.time()) - SESSION_S, "+inf")
    names = [name.decode() for name in fresh]
    return sorted(names, key=lambda name: (int(name.split("-")[0][1:]), name))


def owner(names: list[str], experiment_id: int, partition: int | str) -> str | None:
    if not names:
        return None
    index = experiment_id + (partition if isinstance(partition, int) else len(names) - 1)
    return names[index % len(names)]


def consumers(redis: Redis | None = None) -> list[dict]:
    """The live consumers, for the live view: name, pid, and what each is doing."""
    redis = redis or get_redis()
    names = members(redis)
    info = redis.hmget(MEMBER_INFO, names) if names else []
    return [{"name": name, **json.loads(raw or "{}")} for name, raw in zip(names, info, strict=True)]


def assignment(experiment_id: int, params: dict, redis: Redis | None = None) -> list[dict]:
    """Which consumer owns each partition of a log experiment now, and its lag."""
    redis = redis or get_redis()
    k = lambda name: live.key(experiment_id, name)  # noqa: E731
    count = int(params.get("partitions", 1))
    pipe = redis.pipeline()
    pipe.hgetall(k("prod"))
    pipe.hgetall(k("done"))
    pipe.hgetall(k("maxlag"))
    for partition in range(count):
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
        for p in range(count)
    ]


def request_kill(name: str, experiment_id: int, redis: Redis | None = None) -> bool:
    """Ask a live consumer to SIGKILL itself for run `experiment_id`. It dies at once if it is idle or
    working on that run's message; busy with another run's message, it finishes that one first, so a
    visitor's kill never fails someone else's delivery. Its pool restarts it a few seconds later."""
    redis = redis or get_redis()
    if name not in members(redis):
        return False
    pipe = redis.pipeline()
    pipe.sadd(kill_key(name), experiment_id)  # a set: two runs' visitors may ask for the same consumer
    pipe.expire(kill_key(name), 30)
    pipe.execute()
    return True


# Delete a lease only while the dead consumer still holds it (it may have run out and been taken).
_RELEASE_IF_HELD = """
local released = 0
for _, lease in ipairs(KEYS) do
  if redis.call('GET', lease) == ARGV[1] then redis.call('DEL', lease); released = released + 1 end
end
return released
"""


def release_leases(redis: Redis, name: str, keep: set[int]) -> int:
    """A consumer died: hand back at once the partitions it held for every log run except those in `keep`,
    the runs it died for. The Lab's consumers are shared, but each run stands for its own consumer group:
    only a run whose consumer was killed (or crashed) should see its partitions wait for the lease."""
    leases = [
        live.key(int(experiment_id), f"lease:{partition}")
        for experiment_id, model in redis.hgetall(ACTIVE).items()
        if model == b"log" and int(experiment_id) not in keep
        for partition in [*range(_partitions(redis, int(experiment_id))), RETRY_TOPIC]
    ]
    return int(redis.eval(_RELEASE_IF_HELD, len(leases), *leases, name)) if leases else 0


def _partitions(redis: Redis, experiment_id: int) -> int:
    context = context_of(redis, experiment_id)
    return int(context[0].get("partitions", 1)) if context else 0


# ---------------------------------------------------------------- consuming


def oracle(experiment_id: int, params: dict, redis: Redis | None = None) -> dict:
    """Redis's own view of a stream or log run: what is still pending and what sits in the DLQ stream."""
    redis = redis or get_redis()
    k = lambda name: live.key(experiment_id, name)  # noqa: E731
    dead = redis.xlen(k("dlqs"))
    if model_of(params) == "stream":
        pending = redis.xpending(k("q"), GROUP)["pending"] if redis.exists(k("q")) else 0
        return {"pending": pending, "dead_letter_stream": dead}
    prod, done = redis.hgetall(k("prod")), redis.hgetall(k("done"))
    uncommitted = sum(int(v) for v in prod.values()) - sum(int(v) for v in done.values())
    return {"pending": uncommitted + redis.zcard(k("retryq")), "dead_letter_stream": dead}
