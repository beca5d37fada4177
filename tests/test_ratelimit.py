import pytest
from redis.exceptions import RedisError

from prepsite.ratelimit import allow


def test_allows_up_to_the_limit_then_refuses():
    results = [allow("t-limit", "visitor-a", limit=3, window_s=60, fail_open=False) for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert allow("t-limit", "visitor-b", limit=3, window_s=60, fail_open=False)


def test_redis_down_policy_is_explicit(redis_control):
    redis_control.stop()
    assert allow("t-down", "visitor", limit=1, window_s=60, fail_open=True) is True
    with pytest.raises(RedisError):
        allow("t-down", "visitor", limit=1, window_s=60, fail_open=False)
