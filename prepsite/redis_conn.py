"""The Redis client the site's own code uses, and a cheap liveness probe."""

from functools import cache

from django.conf import settings
from redis import Redis
from redis.exceptions import OutOfMemoryError, RedisError

LAB_QUEUE = "lab"


@cache
def _client(url: str) -> Redis:
    # redis-py's pool notices a fork (pid check), so RQ work-horses get fresh sockets.
    return Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5, health_check_interval=30)


def get_redis() -> Redis:
    """The Lab's Redis, as django-rq's RQ_QUEUES configures the lab queue (the one place it is set)."""
    return _client(settings.RQ_QUEUES[LAB_QUEUE]["URL"])


def redis_ok() -> bool:
    try:
        return bool(get_redis().ping())
    except (RedisError, OSError):
        return False


def redis_is_full(exc: BaseException | None) -> bool:
    """Whether an error (or what caused it) is Redis refusing writes at maxmemory (noeviction)."""
    while exc is not None:
        if isinstance(exc, OutOfMemoryError) or "maxmemory" in str(exc) or str(exc).startswith("OOM"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
