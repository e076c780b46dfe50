"""Shared fixtures: real Redis and PostgreSQL (fail loudly when absent), free ports, settings."""
from __future__ import annotations

import os
import socket
import uuid

import pytest

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

REDIS_URL = os.environ.get("CASEMATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_URL = os.environ.get("CASEMATE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
async def redis_client():
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"this test needs a real Redis at {REDIS_URL} ({exc}); run `make services` "
                    "or set CASEMATE_TEST_REDIS_URL", pytrace=False)
    prefix = f"cmtest:{uuid.uuid4().hex[:8]}:"
    yield client, prefix
    async for k in client.scan_iter(match=prefix + "*"):
        await client.delete(k)
    await client.aclose()
