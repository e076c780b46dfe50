"""Transparency-log storage: one append-only list of leaf hashes per log, and signed tree heads.

Each tenant has its own log (`log_id` = tenant id); events without a tenant go to the log
"platform". Leaves are appended by `write_audit_events` in the transaction that stores the
events (see `EventsRepo`), so no stored event is outside the log, together with the tree
nodes the new leaves complete (see `TreeNodesRepo`). Retention may delete an event later; its
leaf stays, marked purged, so the tree and every signed head remain valid.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Conn
from admin_api.store.codec import utcnow
from admin_api.store.tlog_nodes import APPEND_LOCK, TreeNodesRepo
from admin_api.store.leaf_bytes import fast_leaf_hash

PLATFORM_LOG = "platform"
_CHUNK = 100


def log_id_for(tenant_id: str | None) -> str:
    return tenant_id or PLATFORM_LOG


def event_dict(row: Sequence[Any]) -> dict[str, Any]:
    """An insert row of `audit_events` (column order of write_audit_events) as an event mapping."""
    keys = ("id", "tenant_id", "ts", "actor", "action", "resource_type", "resource_id", "outcome", "request_id",
            "details")
    return dict(zip(keys, row, strict=True))


class TransparencyRepo(TreeNodesRepo):
    async def _unseen(self, conn: Conn, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows whose event id is neither stored yet nor repeated earlier in the batch."""
        seen: set[str] = set()
        for start in range(0, len(rows), _CHUNK):
            ids = [r[0] for r in rows[start:start + _CHUNK]]
            marks = ", ".join(f"${i + 1}" for i in range(len(ids)))
            found = await conn.fetch(f"SELECT id FROM audit_events WHERE id IN ({marks})", *ids)
            seen.update(r["id"] for r in found)
        fresh = []
        for r in rows:
            if r[0] not in seen:
                seen.add(r[0])
                fresh.append(r)
        return fresh

    async def _append_leaves(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        """Append one leaf per new event row, in batch order, inside the caller's transaction, and
        store the tree nodes the new leaves complete.

        `seq` numbers leaves across all logs in commit order (writers hold one lock), so the event
        dispatcher can follow it without skipping a late commit.
        """
        if not rows:
            return
        appended: dict[str, tuple[int, list[bytes]]] = {}   # log -> (first new leaf index, new leaf hashes)
        seq = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM tlog_leaves"))
        leaves = []
        for row in rows:
            log = log_id_for(row[1])
            if log not in appended:
                top = await conn.fetchval("SELECT max(leaf_index) FROM tlog_leaves WHERE log_id = $1", log)
                appended[log] = (0 if top is None else int(top) + 1, [])
            start, hashes = appended[log]
            seq += 1
            hashes.append(fast_leaf_hash(event_dict(row)))   # rows normalise details
            leaves.append((log, start + len(hashes) - 1, seq, row[0], hashes[-1]))
        await conn.executemany(
            "INSERT INTO tlog_leaves (log_id, leaf_index, seq, event_id, leaf_hash) VALUES ($1, $2, $3, $4, $5)", leaves)
        for log, (start, hashes) in appended.items():
            await self._store_appended_nodes(conn, log, start, hashes)

    async def backfill_transparency(self, batch: int = 500) -> int:
        """Append leaves for events stored before the log existed (oldest first), after catching up the
        tree nodes of logs that grew before nodes were stored; returns how many leaves were added."""
        from admin_api.store.events import audit_row

        await self.backfill_tree_nodes()
        added = 0
        while True:
            async with self.db.transaction() as conn:
                if self.dialect == "postgres":
                    await conn.execute(f"SELECT pg_advisory_xact_lock({APPEND_LOCK})")
                found = await conn.fetch(
                    "SELECT e.* FROM audit_events e LEFT JOIN tlog_leaves l ON l.event_id = e.id"
                    " WHERE l.event_id IS NULL ORDER BY e.id LIMIT $1", batch)
                if not found:
                    return added
                events = [audit_row(r) for r in found]
                await self._append_leaves(conn, [tuple(e.values()) for e in events])
                added += len(events)

    async def log_size(self, log_id: str) -> int:
        top = await self.db.fetchval("SELECT max(leaf_index) FROM tlog_leaves WHERE log_id = $1", log_id)
        return 0 if top is None else int(top) + 1

    async def leaf_hashes(self, log_id: str, size: int | None = None) -> list[bytes]:
        """The first `size` leaf hashes of a log (all when None), in order."""
        if size is None:
            rows = await self.db.fetch(
                "SELECT leaf_hash FROM tlog_leaves WHERE log_id = $1 ORDER BY leaf_index", log_id)
        else:
            rows = await self.db.fetch(
                "SELECT leaf_hash FROM tlog_leaves WHERE log_id = $1 AND leaf_index < $2 ORDER BY leaf_index",
                log_id, size)
        return [bytes(r["leaf_hash"]) for r in rows]

    async def leaf_hash_at(self, log_id: str, index: int) -> bytes | None:
        """The hash of one leaf, or None beyond the log."""
        value = await self.db.fetchval(
            "SELECT leaf_hash FROM tlog_leaves WHERE log_id = $1 AND leaf_index = $2", log_id, index)
        return None if value is None else bytes(value)

    async def leaf_of_event(self, log_id: str, event_id: str) -> int | None:
        return await self.db.fetchval(
            "SELECT leaf_index FROM tlog_leaves WHERE log_id = $1 AND event_id = $2", log_id, event_id)

    async def iter_log_entries(self, log_id: str, size: int, batch: int = 500) -> AsyncIterator[dict[str, Any]]:
        """Every leaf below `size` in order: the event with its leaf index and stored hash, or the hash alone."""
        from admin_api.store.events import audit_row

        start = 0
        while start < size:
            rows = await self.db.fetch(
                "SELECT l.leaf_index AS leaf_index, l.leaf_hash AS leaf_hash, l.purged_at AS purged_at, e.*"
                " FROM tlog_leaves l LEFT JOIN audit_events e ON e.id = l.event_id"
                " WHERE l.log_id = $1 AND l.leaf_index >= $2 AND l.leaf_index < $3 ORDER BY l.leaf_index",
                log_id, start, min(size, start + batch))
            if not rows:
                return
            for r in rows:
                if r["id"] is None:
                    # purged by retention, or deleted behind the store's back: only the hash is left
                    entry: dict[str, Any] = {"leaf_index": r["leaf_index"], "leaf_hash": bytes(r["leaf_hash"]).hex()}
                    if r["purged_at"] is not None:
                        entry["purged"] = True
                    yield entry
                else:
                    yield {**audit_row(r), "leaf_index": r["leaf_index"], "leaf_hash": bytes(r["leaf_hash"]).hex()}
            start = int(rows[-1]["leaf_index"]) + 1

    async def save_tree_head(self, head: dict[str, Any]) -> None:
        """Keep a signed head: log_id, tree_size, root_hash (bytes), timestamp (ms), key_id, signature (bytes)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO tlog_heads (id, log_id, tree_size, root_hash, signed_ms, key_id, signature)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                new_id(), head["log_id"], head["tree_size"], head["root_hash"], head["timestamp"], head["key_id"],
                head["signature"])

    async def latest_tree_head(self, log_id: str, tree_size: int | None = None) -> dict[str, Any] | None:
        """The newest signed head of a log (of exactly `tree_size` leaves when given)."""
        if tree_size is None:
            row = await self.db.fetchrow(
                "SELECT * FROM tlog_heads WHERE log_id = $1 ORDER BY id DESC LIMIT 1", log_id)
        else:
            row = await self.db.fetchrow(
                "SELECT * FROM tlog_heads WHERE log_id = $1 AND tree_size = $2 ORDER BY id DESC LIMIT 1",
                log_id, tree_size)
        if row is None:
            return None
        return {"log_id": row["log_id"], "tree_size": int(row["tree_size"]), "root_hash": bytes(row["root_hash"]),
                "timestamp": int(row["signed_ms"]), "key_id": row["key_id"], "signature": bytes(row["signature"])}

    async def _mark_purged(self, conn: Conn, event_ids: list[str]) -> None:
        now = utcnow()
        for start in range(0, len(event_ids), _CHUNK):
            ids = event_ids[start:start + _CHUNK]
            marks = ", ".join(f"${i + 2}" for i in range(len(ids)))
            await conn.execute(f"UPDATE tlog_leaves SET purged_at = $1 WHERE event_id IN ({marks})", now, *ids)

    async def events_after(self, seq: int, limit: int = 200) -> list[tuple[int, dict[str, Any]]]:
        """Events (all tenants) whose leaf comes after `seq`, in commit order, with their seq."""
        from admin_api.store.events import audit_row

        rows = await self.db.fetch(
            "SELECT l.seq AS seq, e.* FROM tlog_leaves l JOIN audit_events e ON e.id = l.event_id"
            " WHERE l.seq > $1 ORDER BY l.seq LIMIT $2", seq, limit)
        return [(int(r["seq"]), audit_row(r)) for r in rows]

    async def last_seq(self) -> int:
        return int(await self.db.fetchval("SELECT coalesce(max(seq), 0) FROM tlog_leaves"))

    async def get_cursor(self, name: str) -> int | None:
        value = await self.db.fetchval("SELECT last_id FROM event_cursors WHERE name = $1", name)
        return None if value is None else int(value)

    async def set_cursor(self, name: str, seq: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO event_cursors (name, last_id, updated_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO UPDATE SET last_id = $2, updated_at = $3", name, str(seq), utcnow())

    async def log_ids(self) -> list[str]:
        rows = await self.db.fetch("SELECT DISTINCT log_id FROM tlog_leaves ORDER BY log_id")
        return [r["log_id"] for r in rows]
