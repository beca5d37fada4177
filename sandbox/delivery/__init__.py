"""Delivery models: how a run's messages are stored, handed out, acknowledged and retried.

Three implementations of one interface (sandbox.delivery.base.DeliveryModel), one module each:
`rq` (RQ's queue and workers), `stream` (a consumer group with a visibility timeout) and `log`
(partitions with leases and committed offsets, and a retry topic). Code outside this package looks
a model up once with `model_for(params)` and asks it; it never compares a model's name.
"""

import time

from redis import Redis

from prepsite.redis_conn import get_redis
from sandbox.delivery.base import ConsumedDeliveryModel, DeliveryModel, model_name
from sandbox.delivery.consumed import (
    ACTIVE,
    CONSUMER_NAME,
    DELAYED,
    GROUP,
    LEASE_MS,
    MEMBER_INFO,
    MEMBERS,
    RELEASE_IF_HELD,
    SESSION_S,
    Delivery,
    consumer_name,
    consumers,
    context_of,
    give_slot,
    kill_key,
    members,
    partition_of,
    partition_table,
    share_consumers,
    take_slot,
    unschedule,
    wake,
)
from sandbox.delivery.log import LogModel
from sandbox.delivery.rq import RqModel
from sandbox.delivery.stream import StreamModel
from sandbox.engine.limits import CLI_KEY
from sandbox.models import Experiment

__all__ = [
    "ACTIVE",
    "CONSUMER_NAME",
    "DELAYED",
    "GROUP",
    "LEASE_MS",
    "MEMBERS",
    "MEMBER_INFO",
    "MODELS",
    "SESSION_S",
    "ConsumedDeliveryModel",
    "Delivery",
    "DeliveryModel",
    "active",
    "assignment",
    "consumer_name",
    "consumers",
    "context_of",
    "give_slot",
    "kill_key",
    "members",
    "model_for",
    "oracle",
    "partition_of",
    "rebalance_consumers",
    "release_due",
    "release_leases",
    "take_slot",
    "unschedule",
    "until_next_arrival",
    "wake",
]  # fmt: skip

MODELS: dict[str, DeliveryModel] = {model.name: model for model in (RqModel(), StreamModel(), LogModel())}
DEFAULT = MODELS[RqModel.name]


def model_for(params: dict) -> DeliveryModel:
    """The run's delivery model, from its parameters (an unknown name falls back to the default)."""
    return MODELS.get(model_name(params), DEFAULT)


def oracle(experiment_id: int, params: dict, redis: Redis | None = None) -> dict:
    """What Redis itself holds for the run, as its model sees it (the invariant tests check this)."""
    return model_for(params).redis_view(experiment_id, params, redis)


def assignment(experiment_id: int, params: dict, redis: Redis | None = None) -> list[dict]:
    """Which consumer owns each partition of a run now, and its lag (a stream is one partition)."""
    return partition_table(experiment_id, model_for(params).partitions(params), redis)


def active(redis: Redis) -> dict[int, ConsumedDeliveryModel]:
    """The runs whose messages the consumers serve now, with their models."""
    return {int(e): MODELS[m.decode()] for e, m in redis.hgetall(ACTIVE).items() if m.decode() in MODELS}


def release_due(redis: Redis, now: float | None = None, limit: int = 200) -> int:
    """Move arrivals whose time has come onto their stream or partition (the delayed-delivery mover)."""
    due = redis.zrangebyscore(DELAYED, "-inf", now or time.time(), start=0, num=limit)
    moved = 0
    contexts: dict[int, tuple[dict, str] | None] = {}
    for member in due:
        experiment_id, job = (int(part) for part in member.decode().split(":"))
        if experiment_id not in contexts:
            contexts[experiment_id] = context_of(redis, experiment_id)
        if contexts[experiment_id] is None:
            redis.zrem(DELAYED, member)  # the run expired
            continue
        params, run = contexts[experiment_id]
        # One step: published and taken off the schedule, or (Redis full) neither, retried on the next tick.
        moved += model_for(params).publish(redis, experiment_id, params, job, run, scheduled=True)
    return moved


def until_next_arrival(redis: Redis, now: float | None = None) -> float | None:
    """Seconds until the earliest scheduled arrival (0 if one is overdue); None if none is scheduled."""
    first = redis.zrange(DELAYED, 0, 0, withscores=True)
    return max(0.0, first[0][1] - (now or time.time())) if first else None


def release_leases(redis: Redis, name: str, keep: set[int]) -> int:
    """A consumer died: hand back at once the leases it held for every run except those in `keep`, the
    runs it died for. The Lab's consumers are shared, but each run stands for its own consumer group:
    only a run whose consumer was killed (or crashed) should see its partitions wait for the lease."""
    redis = redis or get_redis()
    leases = [
        lease
        for experiment_id, model in active(redis).items()
        if experiment_id not in keep
        for lease in model.lease_keys(redis, experiment_id)
    ]
    return int(redis.eval(RELEASE_IF_HELD, len(leases), *leases, name)) if leases else 0


def rebalance_consumers(redis: Redis) -> dict[str, int]:
    """Re-share the consumers between the visitors running stream/log runs now (on a start, a finish and
    every janitor pass, as fairshare.rebalance does for RQ's workers)."""
    running = Experiment.objects.active().values_list("limit_key", "params")
    visitors = {key for key, params in running if model_for(params).consumed and key != CLI_KEY}  # CLI: unshared
    return share_consumers(redis, visitors)
