"""The live view's shared drawings: which runs a page watches, the version a page would show, and each
version's rendered panels kept briefly in Redis so every tab (and the renderer) draws a version once."""

import time

from redis import Redis

from prepsite.redis_conn import add_wake, get_redis
from sandbox.engine import keys, live

# One round trip per poll: the version the page would show now, and that version's cached render if any.
_POLL = """
if redis.call('EXISTS', KEYS[5]) == 0 then return {'', 0, false} end  -- expired: nothing to watch
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4]) end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local running = redis.call('HLEN', KEYS[2])
local version = (last[1] and last[1][1] or '0') .. '.' .. (running > 0 and ARGV[1] or '0')
if version == ARGV[2] then return {version, 1, false} end
-- Not drawn yet: the latest drawing (at most a moment old) rather than a render in the request.
return {version, 0, redis.call('GET', KEYS[3] .. version) or redis.call('GET', KEYS[3] .. 'latest')}
"""
RENDER_TTL_SECONDS = 30


def poll(
    experiment_id: int, shown: str, *, watcher: bool = True, connection: Redis | None = None
) -> tuple[str, bool, bytes | None]:
    """(version now, unchanged since `shown`, the cached render of that version or None); the version
    is "" when the experiment's live state is gone (expired).

    The version changes whenever the live view would: every write adds an event, and while a job runs
    its bar grows, so then it also changes every other second. A watcher's poll also marks the
    experiment as watched."""
    redis = connection or get_redis()
    names = [live.key(experiment_id, name) for name in ("ev", "run", "render:")] + [
        keys.WATCHED,
        live.key(experiment_id, "c"),
    ]
    now = time.time()
    marked = f"{now:.3f}" if watcher else ""
    version, same, cached = redis.eval(_POLL, 5, *names, str(int(now // 2)), shown, marked, str(experiment_id))
    return version.decode(), bool(same), cached


def poll_version(experiment_id: int, connection: Redis | None = None) -> str:
    return poll(experiment_id, "", watcher=False, connection=connection)[0]


def watch(experiment_id: int, connection: Redis | None = None) -> None:
    """A page of this experiment opened: the renderer draws it before the page's first poll (woken at once if
    it idles)."""
    pipe = (connection or get_redis()).pipeline(transaction=False)
    pipe.zadd(keys.WATCHED, {str(experiment_id): time.time()})
    add_wake(pipe, keys.WAKE_RENDERER)
    pipe.execute()


def watched(since: float, connection: Redis | None = None) -> list[int]:
    """Experiments some page polled since `since` (older marks are dropped)."""
    redis = connection or get_redis()
    pipe = redis.pipeline()
    pipe.zremrangebyscore(keys.WATCHED, "-inf", f"({since}")
    pipe.zrange(keys.WATCHED, 0, -1)
    return [int(member) for member in pipe.execute()[1]]


def store_render(experiment_id: int, version: str, payload: bytes, connection: Redis | None = None) -> None:
    """Keep one version's rendered panels briefly (and as the latest): every tab watching the run gets
    it without a render."""
    pipe = (connection or get_redis()).pipeline()
    pipe.set(live.key(experiment_id, f"render:{version}"), payload, ex=RENDER_TTL_SECONDS)
    pipe.set(live.key(experiment_id, "render:latest"), payload, ex=RENDER_TTL_SECONDS)
    pipe.execute()
