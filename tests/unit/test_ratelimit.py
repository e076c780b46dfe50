import asyncio

import pytest

from pipeline.ratelimit import LocalRateLimiter, RedisRateLimiter, Scope


async def _burst(limiter, scopes, n):
    return [await limiter.check(scopes) for _ in range(n)]


async def test_local_limiter_allows_exactly_the_limit_and_reports_headers():
    lim = LocalRateLimiter()
    res = await _burst(lim, [Scope("t:a", 100, 10**9), Scope("k:a", 5, 10**9)], 8)
    assert [r.allowed for r in res] == [True] * 5 + [False] * 3
    assert res[0].limit == 5 and res[0].remaining == 4 and res[4].remaining == 0
    assert res[5].reason == "requests" and 1 <= res[5].retry_after_s <= 60


async def test_local_limiter_refuses_once_tokens_per_minute_are_spent():
    lim = LocalRateLimiter()
    scopes = [Scope("k:b", 100, 50)]
    assert (await lim.check(scopes)).allowed
    await lim.add_tokens(["k:b"], 60)
    r = await lim.check(scopes)
    assert not r.allowed and r.reason == "tokens"


async def test_redis_limiter_is_exact_under_concurrency(redis_client):
    client, prefix = redis_client
    lims = [RedisRateLimiter(client, prefix=prefix) for _ in range(2)]
    scopes = [Scope("t:x", 1000, 10**9), Scope("k:x", 37, 10**9)]
    results = await asyncio.gather(*(lims[i % 2].check(scopes) for i in range(100)))
    assert sum(r.allowed for r in results) == 37


async def test_redis_limiter_tokens(redis_client):
    client, prefix = redis_client
    lim = RedisRateLimiter(client, prefix=prefix)
    scopes = [Scope("k:tok", 100, 100)]
    assert (await lim.check(scopes)).allowed
    await lim.add_tokens(["k:tok"], 150)
    r = await lim.check(scopes)
    assert not r.allowed and r.reason == "tokens"


@pytest.mark.parametrize("fail_open, allowed", [(True, True), (False, False)])
async def test_redis_down_fails_open_or_closed_by_config(fail_open, allowed):
    import redis.asyncio as aioredis

    dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    r = await RedisRateLimiter(dead, fail_open=fail_open).check([Scope("k:z", 1, 1)])
    assert r.allowed is allowed and r.degraded
    await dead.aclose()
