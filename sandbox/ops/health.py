"""The Lab's part of /healthz (settings.HEALTH_CHECKS): Redis and its memory, the workers, the scheduler, the
janitor, the stream/log consumers."""

from redis.exceptions import RedisError

from prepsite.redis_conn import LAB_QUEUE, get_redis
from sandbox import delivery
from sandbox.engine import rq_storage
from sandbox.engine.rq_storage import scheduler_alive
from sandbox.ops import janitor

MEMORY_PRESSURE = 0.9  # of maxmemory: starts soon fail (noeviction refuses writes), so say so before they do


def redis_memory(redis) -> dict | None:
    """Used and maximum memory (None: no maxmemory set, Redis may grow until the machine runs out)."""
    info = redis.info("memory")
    used, most = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    if not most:
        return {"used_mb": round(used / 2**20, 1), "max_mb": None, "used_ratio": None}
    return {"used_mb": round(used / 2**20, 1), "max_mb": round(most / 2**20, 1), "used_ratio": round(used / most, 3)}


def lab() -> tuple[dict, str]:
    """(fields for /healthz, status): "error" when Redis does not answer; "degraded" when pages work but the Lab
    cannot run a model or will soon fail: a dead worker's jobs would wait for RQ's own 60+ s (no janitor pass
    lately), retries never fire (no live scheduler), no RQ worker or no stream/log consumer is alive, or Redis
    is near its maxmemory. `problems` says which, in words."""
    try:
        redis = get_redis()
        age = janitor.heartbeat_age(redis)
        body = {
            "redis": "ok",
            "redis_memory": redis_memory(redis),
            "workers": rq_storage.worker_count(redis),
            "consumers": len(delivery.members(redis)),
            "scheduler": scheduler_alive(redis, LAB_QUEUE),
            "janitor_age_s": round(age, 1) if age is not None else None,
        }
    except (RedisError, OSError):
        body = {"redis": "error", "redis_memory": None, "workers": 0, "consumers": 0, "scheduler": False}
        return {**body, "janitor_age_s": None, "problems": ["Redis is not answering"]}, "error"
    problems = []
    if body["janitor_age_s"] is None or body["janitor_age_s"] > janitor.JANITOR_STALE_SECONDS:
        problems.append("no janitor pass lately: a dead worker's jobs wait 60 s+")
    if not body["scheduler"]:
        problems.append("no live scheduler: retries never fire")
    if not body["workers"]:
        problems.append("no RQ worker: rq runs cannot run")
    if not body["consumers"]:
        problems.append("no stream/log consumer alive: stream and log runs cannot start")
    ratio = (body["redis_memory"] or {}).get("used_ratio")
    if ratio is not None and ratio >= MEMORY_PRESSURE:
        problems.append(f"Redis memory at {ratio:.0%} of maxmemory: starts and writes will soon be refused")
    body["problems"] = problems
    return body, "degraded" if problems else "ok"
