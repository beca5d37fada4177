"""Fixed-window rate limits in Redis, with an explicit policy for when Redis is down."""

import time

from redis.exceptions import RedisError

from prepsite.redis_conn import get_redis
from prepsite.visitor import ADDRESS_CEILING_TIMES, address_key, limit_key


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


def allow_visitor(
    name: str, visitor: str, address: str, *, limit: int, window_s: int, fail_open: bool, cost: int = 1
) -> str | None:
    """A per-visitor limit with its per-address ceiling (prepsite.visitor.ADDRESS_CEILING_TIMES larger);
    None while both allow `cost` more calls, else which one refused: "visitor" or "address".
    `address` "" (an account) has no ceiling."""
    checks = [(visitor, limit, "visitor")] + ([(address, limit * ADDRESS_CEILING_TIMES, "address")] if address else [])
    try:
        pipe = get_redis().pipeline()
        for who, _, _ in checks:
            key = window_key(name, who, window_s)
            pipe.incrby(key, cost)
            pipe.expire(key, window_s * 2)
        counts = pipe.execute()[::2]
    except (RedisError, OSError):
        if fail_open:
            return None
        raise
    for count, (_, bound, which) in zip(counts, checks, strict=True):
        if count > bound:
            return which
    return None


def refused_request(name: str, request, *, limit: int, window_s: int, fail_open: bool) -> str | None:
    """allow_visitor for a web request's visitor and address: None while both allow one more call, else
    which one refused ("visitor" or "address"), so the message can say whose budget ran out."""
    return allow_visitor(
        name, limit_key(request), address_key(request), limit=limit, window_s=window_s, fail_open=fail_open
    )
