"""The in-process response cache: per-entry expiry, LRU bound, purge by tenant and model."""
from __future__ import annotations

import pytest

from pipeline import cache as cache_mod
from pipeline.cache import LocalCache, cache_key


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(cache_mod.time, "monotonic", lambda: now[0])
    return now


async def test_an_entry_is_served_until_its_ttl_then_is_a_miss_and_is_dropped(clock: list[float]) -> None:
    c = LocalCache(10)
    await c.set("t1:m:a", b"answer", ttl_s=60)
    clock[0] += 59.9
    assert await c.get("t1:m:a") == b"answer"
    clock[0] += 0.2
    assert await c.get("t1:m:a") is None
    assert c.stats() == {"backend": "memory", "entries": 0, "hits": 1, "misses": 1}


async def test_each_entry_keeps_its_own_ttl(clock: list[float]) -> None:
    c = LocalCache(10)
    await c.set("t1:m:short", b"s", ttl_s=5)
    await c.set("t1:m:long", b"l", ttl_s=500)
    clock[0] += 10
    assert await c.get("t1:m:short") is None and await c.get("t1:m:long") == b"l"
    assert c.stats()["entries"] == 1


async def test_the_least_recently_used_entry_goes_when_full() -> None:
    c = LocalCache(2)
    await c.set("t1:m:a", b"a", ttl_s=60)
    await c.set("t1:m:b", b"b", ttl_s=60)
    assert await c.get("t1:m:a") == b"a"          # a is now the most recent
    await c.set("t1:m:c", b"c", ttl_s=60)
    assert await c.get("t1:m:b") is None and await c.get("t1:m:a") == b"a" and await c.get("t1:m:c") == b"c"


async def test_purge_by_tenant_and_model_leaves_the_others() -> None:
    c = LocalCache(10)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    k1, k2, k3 = cache_key("t1", body), cache_key("t2", body), cache_key("t1", {**body, "model": "o3"})
    for k in (k1, k2, k3):
        await c.set(k, b"x", ttl_s=60)
    assert await c.purge(tenant_id="t1", model="gpt-4o") == 1
    assert await c.get(k1) is None and await c.get(k2) == b"x" and await c.get(k3) == b"x"
    assert await c.purge(tenant_id="t1") == 1 and await c.purge() == 1


def test_the_key_ignores_fields_that_do_not_change_the_answer_and_is_scoped_by_tenant() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    same = {**body, "stream": True, "user": "u-1", "metadata": {"a": 1}}
    assert cache_key("t1", body) == cache_key("t1", same)
    assert cache_key("t1", body) != cache_key("t2", body)
    assert cache_key("t1", body) != cache_key("t1", {**body, "temperature": 1})
