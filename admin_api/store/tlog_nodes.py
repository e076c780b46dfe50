"""Stored complete subtrees of the transparency logs (`tlog_nodes`), so heads and proofs read O(log n) rows.

Node (level, idx) of a log is MTH of its leaves [idx * 2**level, (idx + 1) * 2**level) (see
`admin_api.tlog_tree`); level 0 is the leaf hash in `tlog_leaves`, levels >= 1 live here.
Appending leaves stores the nodes they complete in the same transaction, after reading back
the O(log n) nodes on the log's right edge. Nodes are never changed or deleted (retention
purges events, never leaves), except that a log whose nodes break the invariant below (rows
deleted by hand) has them rebuilt from its leaves.

Logs whose leaves predate the table (or were appended without nodes) are caught up from their
leaves: eagerly by `backfill_tree_nodes` at startup, and lazily by any append or read that
finds a node missing. Invariant: when level-1 node i is stored, every node completed by leaves
below 2 * (i + 1) is stored too, so catching up resumes after the highest level-1 node.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from admin_api.store.backend import Conn
from admin_api.store.base import StoreBase
from admin_api.store.errors import StoreError
from admin_api.tlog_tree import Frontier, Node, span_nodes

APPEND_LOCK = 7420114     # PostgreSQL advisory lock held by every writer of a log's leaves or nodes
_PAGE = 2048              # leaves read per query while catching up (even, so pages end on level-1 nodes)
_BUILD_BATCH = 16 * _PAGE  # leaves caught up per transaction by build_tree_nodes


def _slots(n: int, least: int) -> int:
    """Placeholders for n values, rounded up to a power of two so that only a few statement shapes exist."""
    return max(least, 1 << max(0, n - 1).bit_length())


@lru_cache(maxsize=32)
def _fetch_sql(leaf_slots: int, node_slots: int) -> str:
    """One indexed lookup per wanted leaf or node (each OR arm names the whole primary key, which
    SQLite needs to probe the index rather than scan the log)."""
    leaf_marks = ", ".join(f"${i}" for i in range(2, 2 + leaf_slots))
    first = 2 + leaf_slots
    arms = " OR ".join(f"(log_id = $1 AND level = ${k} AND idx = ${k + 1})"
                       for k in range(first, first + 2 * node_slots, 2))
    return (f"SELECT 0 AS level, leaf_index AS idx, leaf_hash AS hash FROM tlog_leaves"
            f" WHERE log_id = $1 AND leaf_index IN ({leaf_marks})"
            f" UNION ALL SELECT level, idx, hash FROM tlog_nodes WHERE {arms}")


class TreeNodesRepo(StoreBase):
    async def _fetch_nodes(self, conn: Conn, log_id: str, nodes: Sequence[Node]) -> dict[Node, bytes]:
        """The stored hashes among `nodes` (absent ones are left out), in one query.

        Unused placeholders hold index -1, which matches no row.
        """
        wanted = list(dict.fromkeys(nodes))
        if not wanted:
            return {}
        leaves = [idx for level, idx in wanted if level == 0]
        inner = [node for node in wanted if node[0] > 0]
        leaf_slots, node_slots = _slots(len(leaves), 2), _slots(len(inner), 8)
        args: list[object] = [log_id, *leaves, *[-1] * (leaf_slots - len(leaves))]
        for level, idx in inner + [(0, -1)] * (node_slots - len(inner)):
            args += (level, idx)
        rows = await conn.fetch(_fetch_sql(leaf_slots, node_slots), *args)
        return {(int(r["level"]), int(r["idx"])): bytes(r["hash"]) for r in rows}

    async def _insert_nodes(self, conn: Conn, log_id: str, nodes: list[tuple[Node, bytes]]) -> None:
        if nodes:
            await conn.executemany(
                "INSERT INTO tlog_nodes (log_id, level, idx, hash) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (log_id, level, idx) DO NOTHING",
                [(log_id, level, idx, h) for (level, idx), h in nodes])

    async def _store_appended_nodes(self, conn: Conn, log_id: str, start: int, leaves: list[bytes]) -> None:
        """Store the nodes completed by `leaves` appended at index `start` (inside the caller's transaction)."""
        edge = span_nodes(0, start)
        found = await self._fetch_nodes(conn, log_id, edge)
        if len(found) == len(edge):
            frontier = Frontier.of(start, found)
        else:
            frontier, _ = await self._catch_up(conn, log_id, start)
        await self._insert_nodes(conn, log_id, frontier.append(leaves))

    async def _catch_up(self, conn: Conn, log_id: str, end: int | None = None,
                        limit: int | None = None) -> tuple[Frontier, int]:
        """Store the missing nodes completed by leaves below `end` (all leaves when None), reading at most
        `limit` leaves; returns the frontier reached and how many leaves were read."""
        top = await conn.fetchval("SELECT max(idx) FROM tlog_nodes WHERE log_id = $1 AND level = 1", log_id)
        built = 0 if top is None else 2 * (int(top) + 1)
        try:
            frontier = Frontier.of(built, await self._fetch_nodes(conn, log_id, span_nodes(0, built)))
        except KeyError:                  # the invariant does not hold (nodes deleted by hand): rebuild the log
            await conn.execute("DELETE FROM tlog_nodes WHERE log_id = $1", log_id)
            frontier = Frontier(0)
        stop = end
        if limit is not None:
            stop = frontier.size + limit if stop is None else min(stop, frontier.size + limit)
        read = 0
        while stop is None or frontier.size < stop:
            lo = frontier.size
            hi = lo + _PAGE if stop is None else min(stop, lo + _PAGE)
            rows = await conn.fetch(
                "SELECT leaf_index, leaf_hash FROM tlog_leaves WHERE log_id = $1 AND leaf_index >= $2"
                " AND leaf_index < $3 ORDER BY leaf_index", log_id, lo, hi)
            if rows and int(rows[-1]["leaf_index"]) != lo + len(rows) - 1:
                raise StoreError(f"transparency log {log_id} has a gap in its leaves after leaf {lo}")
            await self._insert_nodes(conn, log_id, frontier.append(bytes(r["leaf_hash"]) for r in rows))
            read += len(rows)
            if len(rows) < hi - lo:
                break
        if end is not None and frontier.size != end:
            raise StoreError(f"transparency log {log_id} has {frontier.size} leaves, not {end}")
        return frontier, read

    async def build_tree_nodes(self, log_id: str) -> None:
        """Catch up one log's nodes from its leaves, in transactions of a bounded number of leaves."""
        while True:
            async with self.db.transaction() as conn:
                if self.dialect == "postgres":
                    await conn.execute(f"SELECT pg_advisory_xact_lock({APPEND_LOCK})")
                _, read = await self._catch_up(conn, log_id, limit=_BUILD_BATCH)
            if read < _BUILD_BATCH:
                return

    async def backfill_tree_nodes(self) -> None:
        """Catch up the nodes of every log (logs that grew before `tlog_nodes` existed)."""
        rows = await self.db.fetch("SELECT DISTINCT log_id FROM tlog_leaves")
        for r in rows:
            await self.build_tree_nodes(r["log_id"])

    async def tree_nodes(self, log_id: str, nodes: Sequence[Node]) -> dict[Node, bytes]:
        """The hashes of `nodes` of one log (a `tlog_tree.NodeFetch`), catching the log up first if needed.

        Raises StoreError when a node is still missing (it lies beyond the log's leaves).
        """
        found = await self._fetch_nodes(self.db, log_id, nodes)
        if len(found) < len(set(nodes)):
            await self.build_tree_nodes(log_id)
            found = await self._fetch_nodes(self.db, log_id, nodes)
            missing = [n for n in nodes if n not in found]
            if missing:
                raise StoreError(f"transparency log {log_id} has no node {missing[0]}: it is smaller than asked")
        return found
