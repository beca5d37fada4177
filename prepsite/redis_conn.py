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


WAKE_TTL_S = 10  # a wake token nobody took (its sleeper died, or looked anyway) goes


def add_wake(pipe, key: str) -> None:
    """Queue a wake token on `key` in a pipeline: whoever idles in `wait_for_wake(key)` returns at once."""
    pipe.lpush(key, 1)
    pipe.ltrim(key, 0, 0)  # one token is enough, however many wakes came
    pipe.expire(key, WAKE_TTL_S)


def wait_for_wake(redis: Redis, key: str, timeout: float) -> bool:
    """Block until `key` holds a wake token (`add_wake`) or `timeout` seconds pass; True if woken. An idle
    process waits here instead of polling: it costs nothing, and what wakes it waits for no poll."""
    return redis.blpop([key], timeout=timeout) is not None


def redis_is_full(exc: BaseException | None) -> bool:
    """Whether an error (or what caused it) is Redis refusing writes at maxmemory (noeviction)."""
    while exc is not None:
        if isinstance(exc, OutOfMemoryError) or "maxmemory" in str(exc) or str(exc).startswith("OOM"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
