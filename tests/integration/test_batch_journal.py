"""Traces and anomalies lose nothing either: per-worker journals, orphan adoption, replay after an outage."""
from __future__ import annotations

from datetime import UTC, datetime

import orjson

from pipeline.ids import uuid7_str
from proxy.batch_writer import BatchWriter
from proxy.journal import Journal
from tests.integration.test_audit_journal import _count, pg_store  # noqa: F401 - the real PostgreSQL fixture


def _trace(tenant_id: str, i: int) -> dict:
    return {"id": uuid7_str(), "tenant_id": tenant_id, "agent_id": "agent-1", "tool_name": f"tool_{i}",
            "arguments": {"i": i}, "result": None, "decision": "allow", "blocked": False, "ts": datetime.now(UTC)}


async def test_each_worker_journals_apart_and_worker_0_adopts_journals_nobody_owns(tmp_path) -> None:
    w0, w1 = (Journal(tmp_path, "traces", worker=i, workers=2) for i in range(2))
    w0.append([{"n": 0}])
    w1.append([{"n": 1}])
    (tmp_path / "traces-journal.jsonl").write_bytes(b'{"n": "legacy"}\n')       # the single file of old versions
    (tmp_path / "traces-journal-5.jsonl").write_bytes(b'{"n": 5}\n')             # a worker that no longer runs
    assert w1.files() == [w1.path]                                                # never another worker's file
    taken: list = []

    async def write(rows: list) -> bool:
        taken.extend(r["n"] for r in rows)
        return True

    assert await w0.replay(write, 10)
    assert sorted(map(str, taken)) == ["0", "5", "legacy"] and w1.path.exists()
    assert w0.size_bytes == 0


async def test_a_replay_the_store_stops_taking_keeps_the_rest_in_order(tmp_path) -> None:
    j = Journal(tmp_path, "anomalies")
    j.append({"n": i} for i in range(10))
    calls = 0

    async def write(rows: list) -> bool:
        nonlocal calls
        calls += 1
        return calls == 1                        # the first batch is taken, then the store goes away

    assert not await j.replay(write, 4)
    kept = [orjson.loads(line)["n"] for line in j.path.read_bytes().splitlines()]
    assert kept == [4, 5, 6, 7, 8, 9]


async def test_traces_written_during_an_outage_are_all_stored_after_it(pg_store, tmp_path) -> None:  # noqa: F811
    store, conn, schema, key = pg_store
    writer = BatchWriter("traces", store.write_traces, Journal(tmp_path, "traces"), store.ping, batch=50)
    await conn.execute(f'ALTER TABLE "{schema}".tool_traces RENAME TO tool_traces_away')
    for i in range(120):
        writer.submit(_trace(key.tenant_id, i))
    assert not await writer.flush()                        # refused: journaled, not dropped, not retried forever
    assert writer.spilled == 120 and writer.depth == 0
    await conn.execute(f'ALTER TABLE "{schema}".tool_traces_away RENAME TO tool_traces')
    for i in range(120, 130):
        writer.submit(_trace(key.tenant_id, i))
    assert await writer.flush()
    assert await _count(conn, schema, "tool_traces") == 130
    first = await conn.fetchval(f'SELECT tool_name FROM "{schema}".tool_traces ORDER BY ts LIMIT 1')
    assert first == "tool_0"                               # journaled rows kept their own timestamps


async def test_a_row_the_store_refuses_in_itself_is_dead_lettered_and_the_rest_written(pg_store, tmp_path) -> None:  # noqa: F811
    store, conn, schema, key = pg_store
    writer = BatchWriter("traces", store.write_traces, Journal(tmp_path, "traces"), store.ping)
    good = [_trace(key.tenant_id, i) for i in range(3)]
    bad = dict(_trace(key.tenant_id, 99), tenant_id=None)            # NOT NULL column: refused on its own
    for row in (good[0], bad, good[1], good[2]):
        writer.submit(row)
    assert await writer.flush()
    assert await _count(conn, schema, "tool_traces") == 3 and writer.dead_lettered == 1
    assert (tmp_path / "traces-deadletter.jsonl").exists()


async def test_a_full_queue_journals_instead_of_dropping(pg_store, tmp_path) -> None:  # noqa: F811
    store, conn, schema, key = pg_store
    writer = BatchWriter("traces", store.write_traces, Journal(tmp_path, "traces"), store.ping, max_queue=5)
    for i in range(12):
        writer.submit(_trace(key.tenant_id, i))
    assert writer.depth == 5 and writer.spilled == 7
    assert await writer.flush()
    assert await _count(conn, schema, "tool_traces") == 12
