"""Nothing is lost: audit rows spill to the fsync'ed journal while the store fails and are replayed."""
from __future__ import annotations

import time
import uuid

import asyncpg
import pytest

from admin_api.store import open_store
from pipeline.ids import uuid7_str
from pipeline.secrets_box import derive_key
from proxy.audit_writer import AuditWriter

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
MASTER = b"journal-test-master-key-0123456789"


@pytest.fixture
async def pg_store():
    schema = f"j_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is unreachable ({exc}); run `make services`", pytrace=False)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    store = await open_store(f"{PG_URL}?schema={schema}", master_key=MASTER)
    rec = await store.seed_key("journal-org", "cm_live_" + "j" * 40, derive_key(MASTER, "api-key-hash"))
    yield store, conn, schema, rec
    await store.close()
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


def _row(tenant_id: str, key_id: str) -> dict:
    return {"id": uuid7_str(), "tenant_id": tenant_id, "key_id": key_id, "ts": time.time(), "route": "chat",
            "model": "m", "provider": "p", "status": 200, "blocked": False, "reason": None,
            "prompt_tokens": 3, "completion_tokens": 4, "cost_usd": 0.0, "latency_ms": 1.0, "security": {}}


def _event(tenant_id: str) -> dict:
    return {"id": uuid7_str(), "tenant_id": tenant_id, "ts": "2026-11-24T00:00:00.000Z",
            "actor": "api_key:k", "action": "gateway.request.blocked",
            "resource_type": "gateway_request", "resource_id": "r", "outcome": "blocked", "details": {}}


async def _count(conn, schema: str, table: str) -> int:
    return await conn.fetchval(f'SELECT count(*) FROM "{schema}".{table}')


async def test_store_outage_spills_to_the_journal_and_replays_every_event(pg_store, tmp_path):
    store, conn, schema, key = pg_store
    writer = AuditWriter(store, tmp_path, batch_size=50, flush_interval_s=60)
    await conn.execute(f'ALTER TABLE "{schema}".gateway_requests RENAME TO gateway_requests_away')
    for i in range(300):
        writer.submit(_event(key.tenant_id) if i % 10 == 0 else None, _row(key.tenant_id, key.id), ((), 0))
    await writer.flush()                                   # the store refuses: everything goes to the journal
    assert writer.spilled == 300 and writer.depth == 0 and writer.journal_bytes > 0
    await conn.execute(f'ALTER TABLE "{schema}".gateway_requests_away RENAME TO gateway_requests')
    for _ in range(20):                                    # more traffic arrives after the recovery
        writer.submit(None, _row(key.tenant_id, key.id), ((), 0))
    await writer.flush()                                   # journal replayed first, in order, then the queue
    assert await _count(conn, schema, "gateway_requests") == 320
    assert await _count(conn, schema, "audit_events") >= 30
    assert writer.journal_bytes == 0


async def test_a_full_queue_spills_instead_of_dropping(pg_store, tmp_path):
    store, conn, schema, key = pg_store
    writer = AuditWriter(store, tmp_path, max_queue=10, batch_size=5, flush_interval_s=60)
    for _ in range(50):
        writer.submit(None, _row(key.tenant_id, key.id), ((), 0))
    assert writer.depth == 10 and writer.spilled == 40
    await writer.flush()
    assert await _count(conn, schema, "gateway_requests") == 50


async def test_key_usage_counters_are_batched_into_the_store(pg_store, tmp_path):
    store, conn, schema, key = pg_store
    writer = AuditWriter(store, tmp_path, flush_interval_s=60)
    for _ in range(7):
        writer.submit(None, _row(key.tenant_id, key.id), ((), 0))
    await writer.flush()
    row = await conn.fetchrow(f'SELECT usage_requests, usage_tokens, last_used_at FROM "{schema}".api_keys '
                              "WHERE id = $1", key.id)
    assert row["usage_requests"] == 7 and row["usage_tokens"] == 49 and row["last_used_at"] is not None


async def test_a_record_the_store_refuses_is_dead_lettered_not_blocking(pg_store, tmp_path):
    store, conn, schema, key = pg_store
    writer = AuditWriter(store, tmp_path, flush_interval_s=60)
    bad = _event(key.tenant_id)
    bad["actor"] = {"not": "a string"}            # a shape the store rejects
    writer.submit(bad, _row(key.tenant_id, key.id), ((), 0))
    for _ in range(5):
        writer.submit(None, _row(key.tenant_id, key.id), ((), 0))
    await writer.flush()
    assert await _count(conn, schema, "gateway_requests") == 5
    assert writer.dead_lettered == 1 and (tmp_path / "audit-deadletter.jsonl").exists()
    assert writer.journal_bytes == 0
