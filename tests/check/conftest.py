"""Fixtures: a real proxy app (Runtime on SQLite or PostgreSQL, optionally Redis) serving the check routes."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from admin_api.store import ConflictError
from proxy.config import BootstrapKey, Settings
from proxy.runtime import Runtime, prepare_store
from tests.conftest import PG_URL, REDIS_URL, create_pg_schema, drop_pg_schema

SECRET = "check-tests-master-secret-0123456789abcdef"
KEY_A = "cm_live_" + "checkTenantA0123456789abcdefghijklmnopq"
KEY_B = "cm_live_" + "checkTenantB0123456789abcdefghijklmnopq"
REVIEW_KEY_A = "cm_live_" + "checkReviewA0123456789abcdefghijklmnopq"


@pytest.fixture(scope="session")
def detectors() -> Any:
    from proxy.detection import build_detectors

    return build_detectors()


@dataclass
class Proxy:
    client: TestClient
    rt: Runtime
    tenant_a: str
    tenant_b: str

    async def call(self, method: str, path: str, key: str | None = KEY_A, *, json: Any = None,
                   headers: dict[str, str] | None = None, expect: int | None = None) -> tuple[int, Any]:
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        resp = await self.client.request(method, path, json=json, headers=h)
        body = await resp.json(content_type=None)
        if expect is not None:
            assert resp.status == expect, (method, path, resp.status, body)
        return resp.status, body

    async def check(self, tool: str, arguments: Any, *, agent: str = "agent-1", key: str = KEY_A,
                    **extra: Any) -> dict[str, Any]:
        _, body = await self.call("POST", "/api/v1/check", key, json={"agent_id": agent, "tool_name": tool,
                                                                      "arguments": arguments, **extra}, expect=200)
        return body["data"]

    async def audit_actions(self, tenant_id: str, expected: int, **filters: Any) -> dict[str, str]:
        """resource_id -> action of the tenant's audit events, once `expected` of them are written."""
        assert self.rt.audit is not None
        found: dict[str, str] = {}
        for _ in range(60):
            await self.rt.audit.flush()
            page = await self.rt.store.list_audit_events(tenant_id, limit=200, **filters)
            found = {e["id"]: e["action"] for e in page.items}
            if len(found) >= expected:
                break
            await asyncio.sleep(0.05)
        return found

    async def set_tool_rules(self, tenant_id: str, rules: dict[str, Any]) -> None:
        """Attach a policy with these tool_rules to the tenant and wait until the directory has it."""
        store = self.rt.store
        pol = await store.create_policy(tenant_id, f"rules-{uuid.uuid4().hex[:6]}", {"tool_rules": rules})
        await store.update_tenant(tenant_id, policy_id=pol["id"])
        for _ in range(100):
            t = self.rt.directory.tenants.get(tenant_id)
            if t is not None and t.policy_id == pol["id"] and pol["id"] in self.rt.directory.policies:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("policy did not reach the directory")


async def start_proxy(tmp: Path, detectors: Any, *, database_url: str | None = None,
                      redis_url: str | None = None) -> tuple[Proxy, Any]:
    from proxy.app import create_proxy_app

    settings = Settings(data_dir=tmp, secret_key=SECRET, database_url=database_url, redis_url=redis_url,
                        directory_poll_s=0.1, audit_flush_interval_s=0.05,
                        keys=(BootstrapKey(key=KEY_A, tenant="acme", name="a"),
                              BootstrapKey(key=KEY_B, tenant="globex", name="b")))
    await prepare_store(settings)
    rt = Runtime(settings, detectors=detectors)
    client = TestClient(TestServer(create_proxy_app(rt)))
    await client.start_server()
    d = rt.directory
    by_name = {t.name: t.id for t in d.tenants.values()}
    from pipeline.secrets_box import hash_api_key

    try:
        await rt.store.create_key(by_name["acme"], key_hash=hash_api_key(rt.hash_key, REVIEW_KEY_A),
                                  prefix=REVIEW_KEY_A[:12], last4=REVIEW_KEY_A[-4:], name="reviewer",
                                  scopes=["checks:review"])
    except ConflictError:         # a second worker on the same store
        pass
    proxy = Proxy(client, rt, by_name["acme"], by_name["globex"])
    for _ in range(100):
        if hash_api_key(rt.hash_key, REVIEW_KEY_A) in d.keys_by_hash:
            break
        await asyncio.sleep(0.05)
    return proxy, client


@pytest.fixture
async def proxy(tmp_path: Path, detectors: Any) -> AsyncIterator[Proxy]:
    p, client = await start_proxy(tmp_path, detectors)
    try:
        yield p
    finally:
        await client.close()


@pytest.fixture(params=["sqlite", "postgres+redis"])
async def proxy_any(request: pytest.FixtureRequest, tmp_path: Path, detectors: Any) -> AsyncIterator[Proxy]:
    if request.param == "sqlite":
        p, client = await start_proxy(tmp_path, detectors)
        try:
            yield p
        finally:
            await client.close()
        return
    schema = await create_pg_schema("chk")
    p, client = await start_proxy(tmp_path, detectors, database_url=f"{PG_URL}?schema={schema}",
                                  redis_url=REDIS_URL)
    try:
        yield p
    finally:
        await client.close()
        await drop_pg_schema(schema)
        await _drop_shared_baselines(p.tenant_a, p.tenant_b)


async def _drop_shared_baselines(*tenant_ids: str) -> None:
    """The anomaly baselines the proxy shared through Redis for these tenants (they would live 30 days)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        for tenant in tenant_ids:
            async for key in client.scan_iter(match=f"cm:bl:{tenant}:*"):
                await client.delete(key)
    finally:
        await client.aclose()
