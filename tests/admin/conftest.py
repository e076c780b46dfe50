"""Fixtures: a fresh store on SQLite and on real PostgreSQL (one schema per test, dropped after)."""
from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from admin_api.store import Store, open_store

PG_URL = os.environ.get("CASEMATE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MASTER_KEY = b"test-master-key-0123456789abcdef"


async def _pg_schema() -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is unreachable ({exc}); these tests need a real server", pytrace=False)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    return name


async def _drop_pg_schema(name: str) -> None:
    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s = await open_store(f"sqlite:///{tmp_path}/casemate.db", master_key=MASTER_KEY)
        try:
            yield s
        finally:
            await s.close()
        return
    schema = await _pg_schema()
    s = await open_store(f"{PG_URL}?schema={schema}", master_key=MASTER_KEY)
    try:
        yield s
    finally:
        await s.close()
        await _drop_pg_schema(schema)
