"""Fixtures for provider tests: a scripted upstream on 127.0.0.1 and a router factory."""
from __future__ import annotations

from typing import Any, AsyncIterator, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.providers import ProviderConfig, ProviderRouter
from tests.providers.scripted import RecordingSleep, ScriptedUpstream


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    scripted = ScriptedUpstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    scripted.server = server
    yield scripted
    await server.close()


@pytest.fixture
async def make_router() -> AsyncIterator[Callable[..., ProviderRouter]]:
    routers: list[ProviderRouter] = []

    def build(*configs: ProviderConfig, default_provider: str | None = None, **kw: Any) -> ProviderRouter:
        kw.setdefault("sleep", RecordingSleep())
        router = ProviderRouter(configs, default_provider, **kw)
        routers.append(router)
        return router

    yield build
    for router in routers:
        await router.close()
