"""Tool checks and trace uploads are rate limited per tenant and key, apart from the chat budget."""
from __future__ import annotations

import asyncio

from pipeline.secrets_box import hash_api_key
from tests.check.conftest import KEY_A, KEY_B, Proxy

CALL = {"agent_id": "agent-1", "tool_name": "get_weather", "arguments": {"city": "Paris"}}


async def _limit_key(proxy: Proxy, key: str, rpm: int) -> None:
    d = proxy.rt.directory
    rec = d.keys_by_hash[hash_api_key(proxy.rt.hash_key, key)]
    await proxy.rt.store.update_key(rec.tenant_id, rec.id, rpm=rpm)
    for _ in range(100):
        if d.keys_by_hash[hash_api_key(proxy.rt.hash_key, key)].rpm == rpm:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the key's new limit did not reach the directory")


async def test_checks_over_the_keys_rpm_get_a_429_problem_with_retry_after(proxy_any: Proxy) -> None:
    await _limit_key(proxy_any, KEY_A, 3)
    seen = []
    for _ in range(3):
        resp = await proxy_any.client.post("/api/v1/check", json=CALL, headers={"Authorization": f"Bearer {KEY_A}"})
        assert resp.status == 200
        seen.append(int(resp.headers["X-RateLimit-Remaining"]))
        assert resp.headers["X-RateLimit-Limit"] == "3"
    assert seen == [2, 1, 0]
    resp = await proxy_any.client.post("/api/v1/check", json=CALL, headers={"Authorization": f"Bearer {KEY_A}"})
    body = await resp.json(content_type=None)
    assert resp.status == 429 and resp.content_type == "application/problem+json"
    assert body["error_code"] == "GW-429" and "requests per minute" in body["detail"]
    assert int(resp.headers["Retry-After"]) >= 1
    # trace uploads share the tool window of the key; another tenant's key is untouched
    status, _ = await proxy_any.call("POST", "/api/v1/traces", KEY_A, json={
        "agent_id": "agent-1", "tool_name": "get_weather", "decision": "allow"})
    assert status == 429
    await proxy_any.check("get_weather", {"city": "Oslo"}, key=KEY_B)


async def test_the_tool_window_is_apart_from_the_chat_window(proxy: Proxy) -> None:
    await _limit_key(proxy, KEY_A, 2)
    for _ in range(2):
        await proxy.check("get_weather", {"city": "Paris"})
    status, _ = await proxy.call("POST", "/api/v1/check", KEY_A, json=CALL)
    assert status == 429
    # the chat limiter still has the key's whole budget: run its stage as a chat request would
    from pipeline.context import RequestContext

    stage = proxy.rt.chain.stage("rate_limit")
    ctx = RequestContext("chat", "POST", "/v1/chat/completions", {"Authorization": f"Bearer {KEY_A}"}, b"", None)
    proxy.rt.chain.stage("authenticate")(ctx)
    result = stage(ctx)
    if asyncio.iscoroutine(result):
        await result
    assert ctx.response_headers["X-RateLimit-Remaining"] == "1"
