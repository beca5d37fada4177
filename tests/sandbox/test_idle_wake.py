"""An idle Lab blocks instead of polling, and what makes it busy wakes it at once.

With no stream or log run active, the consumers and the arrivals' mover block on a wake key (and beat each
second); with no page watching a run, the renderer blocks on its own. Admitting or redriving a run, or opening
a run's page, pushes the token. The processes here are the real commands, on a Redis database of their own
(2), so the pool a test process may run on database 0 neither wakes them nor takes their tokens."""

import re
import subprocess
import time

import pytest
from redis import Redis

from prepsite.redis_conn import add_wake, wait_for_wake
from sandbox import delivery
from sandbox.engine import keys
from sandbox.liveview import render_cache
from tests.conftest import BASE_DIR, SLOW, STATE, WorkerPool, wait_for, worker_env

DB = 2


@pytest.fixture
def idle_redis(redis_url):
    redis = Redis.from_url(re.sub(r"(/\d+)?$", f"/{DB}", redis_url, count=1))
    redis.flushdb()
    yield redis
    redis.flushdb()


def blocked(redis: Redis) -> int:
    """How many clients of this database wait in BLPOP right now."""
    return sum(
        1
        for client in redis.client_list()
        if int(client["db"]) == DB and client["cmd"] == "blpop" and "b" in client["flags"]
    )


def test_a_wake_token_ends_an_idle_wait_once_however_many_wakes_came(idle_redis):
    pipe = idle_redis.pipeline()
    for _ in range(3):
        add_wake(pipe, "lab:test:wake")
    pipe.execute()
    assert idle_redis.llen("lab:test:wake") == 1
    assert 0 < idle_redis.ttl("lab:test:wake") <= 10  # a token nobody takes does not stay
    assert wait_for_wake(idle_redis, "lab:test:wake", 5)
    assert not wait_for_wake(idle_redis, "lab:test:wake", 0.05)


def test_wake_reaches_the_mover_and_every_live_consumer_not_a_departed_one(idle_redis):
    now = time.time()
    idle_redis.zadd(delivery.MEMBERS, {"c1-901": now, "c2-902": now, "c3-903": now - 60})
    delivery.wake(idle_redis)
    assert idle_redis.llen(keys.WAKE_MOVER) == 1
    assert idle_redis.llen(keys.consumer_wake("c1-901")) == 1
    assert idle_redis.llen(keys.consumer_wake("c2-902")) == 1
    assert not idle_redis.exists(keys.consumer_wake("c3-903"))  # silent past its session: it left the group


def spawn(command: list[str], env: dict) -> subprocess.Popen:
    log = open(STATE["workdir"] / "idle-wake.log", "ab")  # noqa: SIM115
    return subprocess.Popen([*WorkerPool.manage, *command], env=env, cwd=BASE_DIR, stdout=log, stderr=log)


@pytest.fixture
def idle_env(idle_redis, db):
    from django.db import connection

    env = worker_env(connection.settings_dict)
    env["REDIS_URL"] = re.sub(r"(/\d+)?$", f"/{DB}", STATE["redis_url"], count=1)
    return env


@pytest.mark.process
def test_idle_consumers_and_mover_block_until_a_run_wakes_them(idle_redis, idle_env):
    process = spawn(["lab_consumers", "--num", "2"], idle_env)
    try:
        wait_for(lambda: len(delivery.members(idle_redis)) == 2, 30 * SLOW, message="two consumers to join")
        # Both consumers and the mover sit in BLPOP (nothing is active), not in a sleep between polls.
        wait_for(lambda: blocked(idle_redis) == 3, 10 * SLOW, message="consumers and mover blocked")
        beats = dict(idle_redis.zrange(delivery.MEMBERS, 0, -1, withscores=True))
        wait_for(
            lambda: all(idle_redis.zscore(delivery.MEMBERS, name) > beat for name, beat in beats.items()),
            10 * SLOW,
            message="idle consumers to keep beating",
        )
        names = delivery.members(idle_redis)
        delivery.wake(idle_redis)  # what admitting or redriving a run does
        wake_keys = [keys.WAKE_MOVER, *map(keys.consumer_wake, names)]
        wait_for(lambda: not idle_redis.exists(*wake_keys), 10 * SLOW, message="every token taken")
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.process
def test_the_renderer_blocks_while_nothing_is_watched_and_a_page_wakes_it(idle_redis, idle_env):
    process = spawn(["lab_renderer"], idle_env)
    try:
        wait_for(lambda: blocked(idle_redis) == 1, 30 * SLOW, message="the idle renderer blocked")
        render_cache.watch(987654, idle_redis)  # a page of a run opened (no such run: nothing to draw)
        wait_for(lambda: not idle_redis.exists(keys.WAKE_RENDERER), 10 * SLOW, message="the renderer woken")
        assert idle_redis.zscore(keys.WATCHED, "987654") is not None
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.process
def test_idle_consumers_wait_out_a_redis_restart_instead_of_dying(idle_redis, idle_env, redis_control):
    log = STATE["workdir"] / "idle-wake.log"
    seen = log.stat().st_size if log.exists() else 0
    process = spawn(["lab_consumers", "--num", "2"], idle_env)
    try:
        wait_for(lambda: blocked(idle_redis) == 3, 30 * SLOW, message="consumers and mover blocked")
        names = set(delivery.members(idle_redis))
        redis_control.stop()
        wait_for(lambda: log.read_bytes()[seen:].count(b"Redis unavailable") >= 2, 30 * SLOW, message="both to notice")
        redis_control.start()
        # The same two consumers (a restarted one would have a new pid in its name) back in their idle wait.
        wait_for(lambda: set(delivery.members(idle_redis)) == names, 30 * SLOW, message="the same consumers to beat")
        wait_for(lambda: blocked(idle_redis) == 3, 30 * SLOW, message="consumers and mover blocked again")
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)
