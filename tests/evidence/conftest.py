"""Fixtures: the admin fixtures (SQLite and real PostgreSQL stores, admin client, two organizations),
an admin app whose webhooks may reach 127.0.0.1 (the config allow-list), and a webhook receiver."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from admin_api.app import create_admin_app
from admin_api.bootstrap import bootstrap
from admin_api.settings import AdminSettings
from admin_api.store import Store
from tests.admin.conftest import (  # noqa: F401  (pytest fixtures re-exported)
    MASTER_KEY,
    PASSWORD,
    AdminHarness,
    Org,
    admin,
    orgs,
    store,
)


@dataclass
class Receiver:
    """A local HTTP endpoint that records what it receives and answers with `statuses` (then 200)."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def hook(request: web.Request) -> web.Response:
        rec.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=rec.statuses.pop(0) if rec.statuses else 200, text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    rec.url = str(server.make_url("/hook"))
    try:
        yield rec
    finally:
        await server.close()


@pytest.fixture
async def hooks_admin(store: Store) -> AsyncIterator[tuple[AdminHarness, Org]]:  # noqa: F811
    """An admin app allowed to call 127.0.0.0/8, with fast polling and retries; and one organization."""
    settings = AdminSettings(master_key=MASTER_KEY, allow_registration=True, validate_responses=True,
                             webhook_allow_networks=("127.0.0.0/8",), dispatch_poll_s=0.05,
                             webhook_retry_base_s=0.05, webhook_max_attempts=3, webhook_timeout_s=5.0)
    boot = await bootstrap(store, tenant="Platform", email="root@example.com", password=PASSWORD,
                           master_key=MASTER_KEY)
    client = TestClient(TestServer(create_admin_app(store, settings), host="127.0.0.1"))
    await client.start_server()
    try:
        harness = AdminHarness(client, store, settings, boot, None)  # type: ignore[arg-type]
        org = await harness.register("Hooks Inc", "hooks@example.com")
        yield harness, org
    finally:
        await client.close()
