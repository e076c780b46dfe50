"""Schemathesis against the live admin app: no 5xx, every response matches its documented schema.

The app runs on 127.0.0.1 in a thread with its own event loop (SQLite, then PostgreSQL); the
generated cases, positive and negative, come from the OpenAPI document the app serves. The
proxy's paths in the document (served on another port) are left out.
"""
from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from admin_api.app import create_admin_app
from admin_api.bootstrap import bootstrap
from admin_api.settings import AdminSettings
from admin_api.store import open_store
from pipeline.cache import LocalCache
from tests.admin.conftest import MASTER_KEY, PASSWORD, PG_URL

EXAMPLES_PER_MODE = 6


@dataclass
class Live:
    base_url: str
    token: str


def _serve(url: str, ready: threading.Event, box: dict[str, object], stop: threading.Event) -> None:
    async def main() -> None:
        schema = None
        if url == "postgres":
            schema = f"t_{uuid.uuid4().hex[:16]}"
            conn = await asyncpg.connect(PG_URL, timeout=5)
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            await conn.close()
            store = await open_store(f"{PG_URL}?schema={schema}", master_key=MASTER_KEY)
        else:
            store = await open_store(url, master_key=MASTER_KEY)
        await bootstrap(store, tenant="Platform", email="root@example.com", password=PASSWORD, master_key=MASTER_KEY)
        runtime = SimpleNamespace(cache=LocalCache(1000))     # what the proxy's Runtime offers the admin app
        app = create_admin_app(store, AdminSettings(master_key=MASTER_KEY, allow_registration=True,
                                                    login_attempts=1000, provider_test_timeout_s=0.5,
                                                    runtime=runtime))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["port"] = runner.addresses[0][1]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()
        if schema is not None:
            await store.db.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await store.close()

    try:
        asyncio.run(main())
    except BaseException as exc:  # noqa: BLE001 - surfaced to the test through `box`
        box["error"] = exc
        ready.set()


@pytest.fixture(params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    url = f"sqlite:///{tmp_path}/live.db" if request.param == "sqlite" else "postgres"
    ready, stop, box = threading.Event(), threading.Event(), {}
    thread = threading.Thread(target=_serve, args=(url, ready, box, stop), daemon=True)
    thread.start()
    assert ready.wait(30), "admin app did not start"
    if "error" in box:
        pytest.fail(f"admin app failed to start: {box['error']!r}", pytrace=False)
    base = f"http://127.0.0.1:{box['port']}"
    login = requests.post(f"{base}/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD},
                          timeout=10)
    assert login.status_code == 200, login.text
    try:
        yield Live(base, login.json()["data"]["access_token"])
    finally:
        stop.set()
        thread.join(30)


def test_generated_requests_cause_no_server_error_and_match_the_schema(live: Live) -> None:
    doc = requests.get(f"{live.base_url}/openapi.json", headers={"Authorization": f"Bearer {live.token}"},
                       timeout=10).json()
    schema = schemathesis.openapi.from_dict(doc).exclude(tag="proxy")
    auth = {"Authorization": f"Bearer {live.token}"}
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    session = requests.Session()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=live.base_url, session=session, headers=auth, checks=checks)

            try:
                run()
            except Unsatisfiable:
                # no parameter or body to make invalid: negative mode has nothing to send
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert operations >= 60
