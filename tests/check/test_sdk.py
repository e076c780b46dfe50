"""The agent SDK against a real proxy: allowed calls run, blocked ones raise ToolBlocked, pending ones wait."""
from __future__ import annotations

import asyncio

import pytest

from casemate_sdk import Casemate, CasemateError, ToolBlocked
from tests.check.conftest import KEY_A, REVIEW_KEY_A, Proxy


def _client(proxy: Proxy, **kw: object) -> Casemate:
    return Casemate(str(proxy.client.make_url("")), api_key=KEY_A, agent_id="sdk-agent", **kw)  # type: ignore[arg-type]


async def test_async_guarded_tool_runs_when_allowed_and_raises_when_blocked(proxy: Proxy) -> None:
    cm = _client(proxy)
    ran: list[str] = []

    @cm.guarded_tool()
    async def run_sql(query: str, limit: int = 10) -> str:
        ran.append(query)
        return f"{limit} rows"

    try:
        assert await run_sql("SELECT id FROM orders WHERE id = 1") == "10 rows"
        with pytest.raises(ToolBlocked) as blocked:
            await run_sql("DROP TABLE orders")
        assert blocked.value.result.decision == "block" and blocked.value.result.risk_level == "CRITICAL"
        assert "run_sql" in str(blocked.value) and "destructive SQL" in str(blocked.value)
        assert ran == ["SELECT id FROM orders WHERE id = 1"]
    finally:
        await cm.aclose()


async def test_sync_decorator_waits_for_a_reviewer(proxy: Proxy) -> None:
    cm = _client(proxy, review_wait_s=10)

    @cm.guarded_tool("read_file")
    def read(path: str) -> str:
        return "secret material"

    async def approve_when_pending() -> None:
        for _ in range(100):
            page = await proxy.rt.store.list_checks(proxy.tenant_a, status="pending")
            if page.items:
                await proxy.call("PATCH", f"/api/v1/check/{page.items[0]['id']}", REVIEW_KEY_A,
                                 json={"decision": "allow", "decided_by": "oncall"}, expect=200)
                return
            await asyncio.sleep(0.05)
        raise AssertionError("no pending check appeared")

    approver = asyncio.create_task(approve_when_pending())
    try:
        assert await asyncio.to_thread(read, "/home/app/.ssh/id_rsa") == "secret material"
        await approver
    finally:
        cm.close()


async def test_errors_surface_as_casemate_error(proxy: Proxy) -> None:
    cm = Casemate(str(proxy.client.make_url("")), api_key="cm_live_wrong", agent_id="x")
    try:
        with pytest.raises(CasemateError) as err:
            await cm.acheck("get_weather", {"city": "Oslo"})
        assert err.value.status == 401
    finally:
        await cm.aclose()
