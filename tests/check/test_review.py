"""Pending -> human review -> decision: poll, long-poll, PATCH, timeout, admin review queue, agent tokens."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from admin_api.app import create_admin_app
from admin_api.settings import AdminSettings
from tests.check.conftest import KEY_A, KEY_B, REVIEW_KEY_A, Proxy, start_proxy
from tests.conftest import REDIS_URL

def _admin_app(proxy: Proxy) -> Any:
    """The admin app on the proxy's store and secret, checking every answer against its declared schema."""
    settings = AdminSettings(master_key=proxy.rt.master, runtime=proxy.rt, validate_responses=True)
    return create_admin_app(proxy.rt.store, settings)


PENDING_CALL = ("read_file", {"path": "/home/app/.ssh/id_rsa"})


async def _pending(proxy: Proxy, agent: str = "agent-1", key: str = KEY_A) -> dict[str, Any]:
    data = await proxy.check(*PENDING_CALL, agent=agent, key=key)
    assert data["decision"] == "pending", data
    assert data["review"]["poll"] == f"/api/v1/check/{data['check_id']}/decision"
    return data


async def test_reviewer_decision_is_visible_to_the_polling_agent_and_audited(proxy_any: Proxy) -> None:
    proxy = proxy_any
    check = await _pending(proxy)
    cid = check["check_id"]
    _, body = await proxy.call("GET", f"/api/v1/check/{cid}/decision", expect=200)
    assert body["data"]["decision"] == "pending" and body["data"]["timeout_decision"] == "block"
    _, body = await proxy.call("PATCH", f"/api/v1/check/{cid}", REVIEW_KEY_A,
                               json={"decision": "allow", "decided_by": "alice@acme.test", "reason": "known key"},
                               expect=200)
    assert body["data"]["decision"] == "allow" and body["data"]["decided_by"] == "alice@acme.test"
    _, body = await proxy.call("GET", f"/api/v1/check/{cid}/decision", expect=200)
    assert body["data"]["decision"] == "allow" and body["data"]["reason"] == "known key"
    status, body = await proxy.call("PATCH", f"/api/v1/check/{cid}", REVIEW_KEY_A, json={"decision": "block"})
    assert status == 409 and body["status"] == 409
    actions = await proxy.audit_actions(proxy.tenant_a, 2, resource_id=cid)
    assert sorted(actions.values()) == ["check.decided", "check.pending"]


async def test_long_poll_returns_as_soon_as_the_reviewer_decides(proxy_any: Proxy) -> None:
    proxy = proxy_any
    cid = (await _pending(proxy))["check_id"]

    async def decide_later() -> None:
        await asyncio.sleep(0.3)
        await proxy.call("PATCH", f"/api/v1/check/{cid}", REVIEW_KEY_A, json={"decision": "block"}, expect=200)

    started = time.monotonic()
    task = asyncio.create_task(decide_later())
    _, body = await proxy.call("GET", f"/api/v1/check/{cid}/decision?wait=10", expect=200)
    elapsed = time.monotonic() - started
    await task
    assert body["data"]["decision"] == "block"
    assert 0.25 <= elapsed < 2.0, elapsed


async def test_long_poll_without_a_decision_answers_pending_after_the_wait(proxy: Proxy) -> None:
    cid = (await _pending(proxy))["check_id"]
    started = time.monotonic()
    _, body = await proxy.call("GET", f"/api/v1/check/{cid}/decision?wait=0.6", expect=200)
    assert body["data"]["decision"] == "pending"
    assert 0.55 <= time.monotonic() - started < 2.0
    status, body = await proxy.call("GET", f"/api/v1/check/{cid}/decision?wait=61")
    assert status == 400 and body["field"] == "wait"


async def test_unreviewed_check_times_out_to_the_policy_default(proxy: Proxy) -> None:
    await proxy.set_tool_rules(proxy.tenant_a, {"review": {"timeout_s": 1, "timeout_decision": "allow"}})
    cid = (await _pending(proxy))["check_id"]
    started = time.monotonic()
    _, body = await proxy.call("GET", f"/api/v1/check/{cid}/decision?wait=5", expect=200)
    assert body["data"]["decision"] == "allow" and body["data"]["decided_by"] == "system:timeout"
    assert 0.8 <= time.monotonic() - started < 3.0
    status, _ = await proxy.call("PATCH", f"/api/v1/check/{cid}", REVIEW_KEY_A, json={"decision": "block"})
    assert status == 409


async def test_sweeper_resolves_expired_checks_nobody_polls(proxy: Proxy) -> None:
    await proxy.set_tool_rules(proxy.tenant_a, {"review": {"timeout_s": 1}})
    cid = (await _pending(proxy))["check_id"]
    for _ in range(60):
        row = await proxy.rt.store.get_check(proxy.tenant_a, cid)
        if row["status"] != "pending":
            break
        await asyncio.sleep(0.1)
    assert row["status"] == "blocked" and row["decided_by"] == "system:timeout"


async def test_review_needs_the_permission_and_stays_inside_the_tenant(proxy: Proxy) -> None:
    cid = (await _pending(proxy))["check_id"]
    status, body = await proxy.call("PATCH", f"/api/v1/check/{cid}", KEY_A, json={"decision": "allow"})
    assert status == 403 and body["error_code"] == "AUTH-003"
    status, body = await proxy.call("GET", f"/api/v1/check/{cid}/decision", KEY_B)
    assert status == 404 and body["type"].endswith("not-found")
    status, _ = await proxy.call("GET", f"/api/v1/check/{cid}/decision?wait=1", KEY_B)
    assert status == 404
    status, _ = await proxy.call("GET", "/api/v1/check/not-a-check/decision")
    assert status == 404
    status, _ = await proxy.call("PATCH", f"/api/v1/check/{cid}", REVIEW_KEY_A, json={"decision": "maybe"})
    assert status == 400


async def test_admin_review_queue_lists_and_resolves_pending_checks(proxy: Proxy) -> None:
    admin = TestClient(TestServer(_admin_app(proxy)))
    await admin.start_server()
    try:
        first = (await _pending(proxy, agent="a1"))["check_id"]
        second = (await _pending(proxy, agent="a2"))["check_id"]
        await _pending(proxy, key=KEY_B)                          # another tenant's check stays invisible
        auth = {"Authorization": f"Bearer {KEY_A}"}             # the tenant's owner key
        resp = await admin.get("/api/v1/checks", headers=auth)
        body = await resp.json()
        assert resp.status == 200, body
        assert [c["id"] for c in body["data"]] == [second, first]
        resp = await admin.get("/api/v1/checks?agent_id=a1", headers=auth)
        assert [c["id"] for c in (await resp.json())["data"]] == [first]

        waiter = asyncio.create_task(proxy.call("GET", f"/api/v1/check/{first}/decision?wait=10"))
        await asyncio.sleep(0.2)
        resp = await admin.post(f"/api/v1/checks/{first}/decision", headers=auth,
                                json={"decision": "allow", "reason": "expected deploy key read"})
        assert resp.status == 200, await resp.text()
        _, polled = await asyncio.wait_for(waiter, 5)
        assert polled["data"]["decision"] == "allow"
        resp = await admin.post(f"/api/v1/checks/{first}/decision", headers=auth, json={"decision": "block"})
        assert resp.status == 409
        resp = await admin.get(f"/api/v1/checks/{first}", headers={"Authorization": f"Bearer {KEY_B}"})
        assert resp.status in (403, 404)
        resp = await admin.get("/api/v1/checks", headers=auth)
        assert [c["id"] for c in (await resp.json())["data"]] == [second]
    finally:
        await admin.close()


async def test_agent_token_authenticates_and_pins_the_agent(proxy: Proxy) -> None:
    admin = TestClient(TestServer(_admin_app(proxy)))
    await admin.start_server()
    try:
        resp = await admin.post("/api/v1/agents/billing-bot/token", headers={"Authorization": f"Bearer {KEY_A}"},
                                json={"ttl_s": 3600})
        body = await resp.json()
        assert resp.status == 201, body
        token = body["data"]["token"]
    finally:
        await admin.close()
    hdr = {"X-Casemate-Agent-Token": token}
    status, body = await proxy.call("POST", "/api/v1/check", None, headers=hdr,
                                    json={"tool_name": "get_weather", "arguments": {"city": "Lyon"}})
    assert status == 200 and body["data"]["agent_id"] == "billing-bot"
    status, body = await proxy.call("POST", "/api/v1/check", None, headers=hdr,
                                    json={"agent_id": "someone-else", "tool_name": "get_weather"})
    assert status == 403
    status, body = await proxy.call("POST", "/api/v1/check", KEY_B, headers=hdr,
                                    json={"tool_name": "get_weather"})
    assert status == 403 and body["error_code"] == "AUTH-009"
    status, body = await proxy.call("POST", "/api/v1/check", None, headers={"X-Casemate-Agent-Token": token + "x"},
                                    json={"tool_name": "get_weather"})
    assert status == 401 and body["error_code"] == "AUTH-008"


async def test_decision_made_on_one_worker_wakes_a_long_poll_on_another(proxy_any: Proxy, tmp_path: Path,
                                                                         detectors: Any) -> None:
    """Two runtimes on one store (PostgreSQL + Redis pub/sub, or SQLite + store polling)."""
    first = proxy_any
    url = first.rt.settings.database_url
    second, client = await start_proxy(tmp_path / "w2", detectors, database_url=url,
                                       redis_url=REDIS_URL if url else None)
    if url is None:   # SQLite: same file
        await client.close()
        second, client = await start_proxy(tmp_path / "w2", detectors,
                                           database_url=first.rt.settings.effective_database_url)
    try:
        cid = (await _pending(first))["check_id"]
        waiter = asyncio.create_task(first.call("GET", f"/api/v1/check/{cid}/decision?wait=10"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await second.call("PATCH", f"/api/v1/check/{cid}", REVIEW_KEY_A, json={"decision": "allow"}, expect=200)
        _, body = await asyncio.wait_for(waiter, 5)
        assert body["data"]["decision"] == "allow"
        assert time.monotonic() - started < 1.0
    finally:
        await client.close()


async def test_pending_check_fails_closed_when_the_store_cannot_keep_it(proxy: Proxy,
                                                                        monkeypatch: Any) -> None:
    async def down(_check: dict[str, Any]) -> None:
        raise ConnectionError("database down")

    monkeypatch.setattr(proxy.rt.store, "create_pending_check", down)
    data = await proxy.check(*PENDING_CALL)
    assert data["decision"] == "block" and "review" not in data
    assert any("review is unavailable" in r for r in data["reasons"])
    status, _ = await proxy.call("GET", f"/api/v1/check/{data['check_id']}/decision")
    assert status == 404
