"""The admin app inside the proxy process: built from the Runtime, nudging every worker through Redis.

Two `DirectorySync` instances stand in for two proxy workers (each with its own Redis connection
and a 30 s poll, so only the pub/sub nudge can make them converge fast). A key revoked or a
switch set through the admin API must be visible to both within one second.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from admin_api.app import CHANGES_CHANNEL, create_admin_app
from admin_api.bootstrap import bootstrap
from admin_api.store import Store
from pipeline.cache import LocalCache
from pipeline.directory import Directory
from proxy.directory_sync import DirectorySync
from tests.admin.conftest import MASTER_KEY, PASSWORD

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _redis() -> aioredis.Redis:
    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except OSError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is unreachable ({exc}); this test needs a real server", pytrace=False)
    return client


@pytest.fixture
async def wired(store: Store) -> AsyncIterator[SimpleNamespace]:
    admin_redis = await _redis()
    runtime = SimpleNamespace(store=store, master=MASTER_KEY, redis=admin_redis, cache=LocalCache(100),
                              settings=SimpleNamespace(allow_registration=False))
    await bootstrap(store, tenant="Platform", email="root@example.com", password=PASSWORD, master_key=MASTER_KEY)
    client = TestClient(TestServer(create_admin_app(runtime), host="127.0.0.1"))
    await client.start_server()
    workers = []
    for _ in range(2):
        r = await _redis()
        directory = Directory()
        sync = DirectorySync(store, directory, poll_s=30.0, redis=r)
        await sync.load()
        sync.start()
        workers.append(SimpleNamespace(redis=r, directory=directory, sync=sync))
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            counts = dict(await admin_redis.pubsub_numsub(CHANGES_CHANNEL))
            if counts.get(CHANGES_CHANNEL.encode(), 0) >= 2:
                break
            await asyncio.sleep(0.02)
        resp = await client.post("/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD})
        session = (await resp.json())["data"]
        yield SimpleNamespace(client=client, workers=workers, cache=runtime.cache, tenant_id=session["tenant_id"],
                              auth={"Authorization": f"Bearer {session['access_token']}"})
    finally:
        for w in workers:
            await w.sync.close()
            await w.redis.aclose()
        await client.close()
        await admin_redis.aclose()


async def _within(seconds: float, condition) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not converged within {seconds} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_revoked_key_reaches_both_workers_within_one_second(wired: SimpleNamespace) -> None:
    resp = await wired.client.post("/api/v1/keys", json={"name": "app"}, headers=wired.auth)
    kid = (await resp.json())["data"]["id"]
    await _within(1.0, lambda: all(kid in w.directory.keys_by_id for w in wired.workers))
    resp = await wired.client.post(f"/api/v1/keys/{kid}/revoke", json={"reason": "leaked"}, headers=wired.auth)
    assert resp.status == 200
    took = await _within(1.0, lambda: all(w.directory.keys_by_id[kid].status == "revoked" for w in wired.workers))
    assert took < 1.0


async def test_kill_switch_reaches_both_workers_within_one_second(wired: SimpleNamespace) -> None:
    resp = await wired.client.put("/api/v1/kill-switch", json={"scope": "global", "reason": "incident"},
                                  headers=wired.auth)
    assert resp.status == 200
    await _within(1.0, lambda: all(w.directory.killed_global == "incident" for w in wired.workers))
    resp = await wired.client.delete("/api/v1/kill-switch/global/*", headers=wired.auth)
    assert resp.status == 204
    await _within(1.0, lambda: all(w.directory.killed_global is None for w in wired.workers))


async def test_cache_routes_use_the_runtime_cache_and_purge_only_the_callers_tenant(wired: SimpleNamespace) -> None:
    await wired.cache.set(f"{wired.tenant_id}:gpt-4o:h1", b"r1", 60)
    await wired.cache.set(f"{wired.tenant_id}:gpt-4o-mini:h2", b"r2", 60)
    await wired.cache.set("another-tenant:gpt-4o:h3", b"r3", 60)
    resp = await wired.client.get("/api/v1/cache/stats", headers=wired.auth)
    assert resp.status == 200 and (await resp.json())["data"]["entries"] == 3
    resp = await wired.client.post("/api/v1/cache/purge", json={"model": "gpt-4o"}, headers=wired.auth)
    assert (await resp.json())["data"] == {"purged": 1}
    resp = await wired.client.post("/api/v1/cache/purge", json={}, headers=wired.auth)
    assert (await resp.json())["data"] == {"purged": 1}
    assert await wired.cache.get("another-tenant:gpt-4o:h3") == b"r3"
