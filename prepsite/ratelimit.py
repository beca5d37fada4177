"""Fixed-window rate limits in Redis, with an explicit policy for when Redis is down."""

import time

from redis.exceptions import RedisError

from prepsite.redis_conn import get_redis


def window_key(name: str, who: str, window_s: int) -> str:
    """The counter of `who`'s calls of `name` in the current fixed window (a Lua script may spend it too)."""
    return f"rl:{name}:{who}:{int(time.time() // window_s)}"


def allow(name: str, who: str, *, limit: int, window_s: int, fail_open: bool) -> bool:
    """True while `who` has made at most `limit` calls of `name` in the current window.

    fail_open decides what a Redis outage means: True for features that must keep working without
    Redis (drill answers), False where Redis is needed anyway (the Lab answers 503 then).
    """
    key = window_key(name, who, window_s)
    try:
        pipe = get_redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, window_s * 2)
        count = pipe.execute()[0]
    except (RedisError, OSError):
        if fail_open:
            return True
        raise
    return count <= limit
