"""The Lab's part of /healthz (settings.HEALTH_CHECKS): Redis, the workers, the scheduler, the janitor."""

from redis.exceptions import RedisError

from prepsite.redis_conn import LAB_QUEUE, get_redis
from sandbox.engine import rq_storage
from sandbox.engine.rq_storage import scheduler_alive
from sandbox.ops import janitor


def lab() -> tuple[dict, str]:
    """(fields for /healthz, status): "error" when Redis does not answer; "degraded" when pages work
    but a dead worker's jobs would wait for RQ's own 60+ s (no janitor pass lately), or retries never
    fire (no live scheduler)."""
    try:
        redis = get_redis()
        age = janitor.heartbeat_age(redis)
        body = {
            "redis": "ok",
            "workers": rq_storage.worker_count(redis),
            "scheduler": scheduler_alive(redis, LAB_QUEUE),
            "janitor_age_s": round(age, 1) if age is not None else None,
        }
    except (RedisError, OSError):
        return {"redis": "error", "workers": 0, "scheduler": False, "janitor_age_s": None}, "error"
    stale = body["janitor_age_s"] is None or body["janitor_age_s"] > janitor.JANITOR_STALE_SECONDS
    return body, "degraded" if stale or not body["scheduler"] else "ok"
