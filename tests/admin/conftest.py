"""Fixtures: a fresh store on SQLite and on real PostgreSQL (one schema per test, dropped after)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from admin_api.app import create_admin_app
from admin_api.bootstrap import BootstrapResult, bootstrap
from admin_api.settings import AdminSettings
from admin_api.store import Store, open_store
from tests.conftest import PG_URL, create_pg_schema, drop_pg_schema

MASTER_KEY = b"test-master-key-0123456789abcdef"


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s = await open_store(f"sqlite:///{tmp_path}/casemate.db", master_key=MASTER_KEY)
        try:
            yield s
        finally:
            await s.close()
        return
    schema = await create_pg_schema()
    s = await open_store(f"{PG_URL}?schema={schema}", master_key=MASTER_KEY)
    try:
        yield s
    finally:
        await s.close()
        await drop_pg_schema(schema)


# ---- admin API ----------------------------------------------------------------------------------

PASSWORD = "correct horse battery staple"


@dataclass
class Org:
    """A signed-in owner of one organization."""

    tenant_id: str
    user_id: str
    email: str
    access: str
    refresh: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@dataclass
class AdminHarness:
    client: TestClient
    store: Store
    settings: AdminSettings
    boot: BootstrapResult
    platform: Org
    nudges: list[int] = field(default_factory=list)

    async def call(self, method: str, path: str, who: Org | str | None = None, *, json: Any = None,
                   expect: int | None = None, **kw: Any) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if isinstance(who, Org):
            headers.update(who.auth)
        elif isinstance(who, str):
            headers["Authorization"] = f"Bearer {who}"
        resp = await self.client.request(method, path, json=json, headers=headers, **kw)
        body = None if resp.status == 204 else await resp.json(content_type=None)
        if expect is not None:
            assert resp.status == expect, (method, path, resp.status, body)
        return resp.status, body

    async def login(self, email: str, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
        _, body = await self.call("POST", "/api/v1/auth/login", json={"email": email, "password": password, **extra},
                                  expect=200)
        return body["data"]

    async def register(self, org: str, email: str) -> Org:
        _, body = await self.call("POST", "/api/v1/auth/register",
                                  json={"email": email, "password": PASSWORD, "organization": org}, expect=201)
        d = body["data"]
        return Org(d["tenant_id"], d["user"]["id"], email, d["access_token"], d["refresh_token"])


@pytest.fixture
async def admin(store: Store) -> AsyncIterator[AdminHarness]:
    nudges: list[int] = []

    async def nudge() -> None:
        nudges.append(1)

    settings = AdminSettings(master_key=MASTER_KEY, allow_registration=True, validate_responses=True,
                             notify_change=nudge, login_attempts=5)
    boot = await bootstrap(store, tenant="Platform", email="root@example.com", password=PASSWORD,
                           master_key=MASTER_KEY)
    app = create_admin_app(store, settings)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        harness = AdminHarness(client, store, settings, boot, None, nudges)  # type: ignore[arg-type]
        d = await harness.login("root@example.com")
        harness.platform = Org(d["tenant_id"], d["user"]["id"], "root@example.com", d["access_token"],
                               d["refresh_token"])
        yield harness
    finally:
        await client.close()


@pytest.fixture
async def orgs(admin: AdminHarness) -> tuple[Org, Org]:
    """Two independent organizations: A (alice) and B (bob)."""
    a = await admin.register("Org A", "alice@example.com")
    b = await admin.register("Org B", "bob@example.com")
    return a, b
