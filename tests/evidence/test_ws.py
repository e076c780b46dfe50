"""GET /ws: CloudEvents 1.0 live events, tenant-scoped, across two workers through real Redis; first-frame
authentication, ping/pong, and slow consumers dropped with close code 1013."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from admin_api.app import create_admin_app
from admin_api.bootstrap import bootstrap
from admin_api.dispatcher import DISPATCHER
from admin_api.resources.ws import CLOSE_SLOW, LIVE_HUB, QUEUE_LIMIT
from admin_api.settings import AdminSettings
from admin_api.store import Store
from tests.admin.conftest import MASTER_KEY, PASSWORD, AdminHarness, Org
from tests.conftest import REDIS_URL


async def _next_event(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        doc = orjson.loads(msg.data)
        if "specversion" in doc:
            return doc


async def _subscribe(ws: aiohttp.ClientWebSocketResponse, *channels: str) -> None:
    await ws.send_json({"type": "subscribe", "channels": list(channels)})
    ack = await ws.receive_json(timeout=5)
    assert ack == {"type": "subscribed", "channels": sorted(channels)}


@pytest.fixture
async def two_workers(store: Store, redis_client: tuple[Any, str]) -> AsyncIterator[tuple[AdminHarness, AdminHarness, Org]]:
    """Two admin apps (as two workers) on one store and one Redis; one organization."""
    _, prefix = redis_client
    await bootstrap(store, tenant="Platform", email="root@example.com", password=PASSWORD, master_key=MASTER_KEY)
    harnesses, redises = [], []
    for _ in range(2):
        redis = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
        redises.append(redis)
        settings = AdminSettings(master_key=MASTER_KEY, allow_registration=True, dispatch_poll_s=0.05, redis=redis,
                                 live_channel=f"{prefix}live")
        client = TestClient(TestServer(create_admin_app(store, settings), host="127.0.0.1"))
        await client.start_server()
        harnesses.append(AdminHarness(client, store, settings, None, None))  # type: ignore[arg-type]
    try:
        org = await harnesses[0].register("Live Org", "live@example.com")
        yield harnesses[0], harnesses[1], org
    finally:
        for h in harnesses:
            await h.client.close()
        for r in redises:
            await r.aclose()


async def test_an_event_written_on_one_worker_reaches_a_socket_on_the_other(
    two_workers: tuple[AdminHarness, AdminHarness, Org]
) -> None:
    first, second, org = two_workers
    await second.client.app[DISPATCHER].stop()          # worker 2 reads nothing itself: only Redis can reach it
    listener = asyncio.create_task(second.client.app[LIVE_HUB].listen())
    try:
        await asyncio.sleep(0.2)                          # the subscription is in place
        async with second.client.ws_connect("/ws", headers=org.auth) as ws:
            await _subscribe(ws, "policy.changed", "aegis.kill_switch.activated")
            await first.call("POST", "/api/v1/policies", org, json={"name": "live", "document": {}}, expect=201)
            event = await _next_event(ws)
            assert event["specversion"] == "1.0" and event["type"] == "policy.changed"
            assert event["source"] == f"/casemate/tenants/{org.tenant_id}"
            assert event["data"]["action"] == "policy.create" and event["datacontenttype"] == "application/json"
            _, key = await first.call("POST", "/api/v1/keys", org, json={"name": "k"}, expect=201)
            await first.call("PUT", "/api/v1/kill-switch", org, expect=200,
                             json={"scope": "key", "target": key["data"]["id"], "reason": "incident"})
            event = await _next_event(ws)                 # key.created was not subscribed
            assert (event["type"], event["subject"]) == ("kill_switch.activated", event["data"]["resource_id"])
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def test_first_frame_authentication_ping_and_tenant_scope(
    two_workers: tuple[AdminHarness, AdminHarness, Org]
) -> None:
    first, _, org = two_workers
    other = await first.register("Other Org", "other@example.com")
    async with first.client.ws_connect("/ws") as mine, first.client.ws_connect("/ws", headers=other.auth) as theirs:
        await mine.send_json({"type": "authenticate", "token": org.access})
        assert (await mine.receive_json(timeout=5)) == {"type": "authenticated", "tenant_id": org.tenant_id}
        await mine.send_json({"type": "ping"})
        assert (await mine.receive_json(timeout=5)) == {"type": "pong"}
        await _subscribe(mine, "*")
        await _subscribe(theirs, "*")
        await first.call("POST", "/api/v1/policies", org, json={"name": "scoped", "document": {}}, expect=201)
        assert (await _next_event(mine))["source"].endswith(org.tenant_id)
        with pytest.raises(asyncio.TimeoutError):
            await _next_event(theirs, timeout=0.5)
    async with first.client.ws_connect("/ws") as anonymous:
        await anonymous.send_json({"type": "authenticate", "token": "not-a-token"})
        msg = await anonymous.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008
    resp = await first.client.get("/ws", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401


async def test_a_slow_consumer_is_dropped_with_1013_instead_of_buffering(
    two_workers: tuple[AdminHarness, AdminHarness, Org]
) -> None:
    first, _, org = two_workers
    hub = first.client.app[LIVE_HUB]
    async with first.client.ws_connect("/ws", headers=org.auth) as ws:
        await _subscribe(ws, "*")
        for i in range(QUEUE_LIMIT + 10):                # no await: the socket cannot drain in between
            hub.deliver({"specversion": "1.0", "id": f"flood-{i}", "source": f"/casemate/tenants/{org.tenant_id}",
                         "type": "gateway.request.blocked", "data": {}})
        assert hub.connections == 0
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type == aiohttp.WSMsgType.CLOSE:
                break
        assert msg.data == CLOSE_SLOW
