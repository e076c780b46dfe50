"""Tree heads and proofs from stored complete subtrees equal the RFC 9162 reference, in O(log n) node reads.

The pure planner (`admin_api.tlog_tree`) is compared with `casemate_verify.merkle` for every size up
to 300; the store path is checked on SQLite and PostgreSQL with append batches of odd sizes, for
logs that grew before nodes were stored, and against an attacker editing stored rows.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from pathlib import Path

import pytest

from admin_api import tlog_tree
from admin_api.store import Store
from admin_api.store.errors import StoreError
from admin_api.transparency import TransparencyLog
from casemate_verify import ProofError, consistency_proof, inclusion_proof, root_hash
from casemate_verify import verify_consistency, verify_inclusion
from tests.admin.conftest import MASTER_KEY

Node = tlog_tree.Node


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(n)]


class _MemoryNodes:
    """Nodes as the store keeps them, built by `Frontier.append` one leaf at a time; counts what is read."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[Node, bytes] = {}
        frontier = tlog_tree.Frontier(0)
        for i, leaf in enumerate(leaves):
            self.nodes[(0, i)] = leaf
            self.nodes.update(frontier.append([leaf]))
        self.size = len(leaves)
        self.fetches: list[list[Node]] = []

    def fetch_for(self, size: int) -> tlog_tree.NodeFetch:
        async def fetch(nodes: list[Node]) -> Mapping[Node, bytes]:
            self.fetches.append(nodes)
            for level, idx in nodes:   # only subtrees complete within the asked tree: never a node beyond it
                assert (idx + 1) << level <= size, ((level, idx), size)
            return {n: self.nodes[n] for n in nodes}
        return fetch


def _read_bound(size: int) -> int:
    """At most one complete sibling per level plus one right-edge decomposition."""
    return 2 * max(1, size.bit_length()) + 1


def test_frontier_stores_exactly_the_complete_subtrees_with_their_rfc_hashes() -> None:
    leaves = _leaves(300)
    mem = _MemoryNodes(leaves)
    expected = {(level, idx) for level in range(1, 9) for idx in range(300 >> level)}
    assert {n for n in mem.nodes if n[0] > 0} == expected
    for level, idx in expected:
        assert mem.nodes[(level, idx)] == root_hash(leaves[idx << level:(idx + 1) << level])


async def test_node_based_root_and_proofs_equal_the_reference_for_every_size_up_to_300() -> None:
    rng = random.Random(9162)
    leaves = _leaves(300)
    mem = _MemoryNodes(leaves)
    for n in range(0, 301):
        prefix = leaves[:n]
        mem.fetches.clear()
        assert await tlog_tree.root(mem.fetch_for(n), n) == root_hash(prefix), n
        for i in rng.sample(range(n), min(n, 6)):
            assert await tlog_tree.inclusion(mem.fetch_for(n), i, n) == inclusion_proof(prefix, i), (i, n)
        for m in {0, n, *rng.sample(range(n + 1), min(n + 1, 6))}:
            assert await tlog_tree.consistency(mem.fetch_for(n), m, n) == consistency_proof(prefix, m), (m, n)
        assert len(mem.fetches) <= 14                       # one read per head or proof
        assert all(len(f) <= _read_bound(n) for f in mem.fetches), n


async def test_every_proof_of_a_few_sizes_equals_the_reference_exhaustively() -> None:
    leaves = _leaves(70)
    mem = _MemoryNodes(leaves)
    for n in (1, 2, 3, 7, 8, 9, 31, 33, 64, 70):
        for i in range(n):
            assert await tlog_tree.inclusion(mem.fetch_for(n), i, n) == inclusion_proof(leaves[:n], i)
        for m in range(n + 1):
            assert await tlog_tree.consistency(mem.fetch_for(n), m, n) == consistency_proof(leaves[:n], m)


async def test_reads_stay_logarithmic_for_a_million_leaf_tree() -> None:
    planned: list[list[Node]] = []

    async def fetch(nodes: list[Node]) -> Mapping[Node, bytes]:
        planned.append(nodes)
        return {n: hashlib.sha256(repr(n).encode()).digest() for n in nodes}

    rng = random.Random(1)
    for n in (1_000_000, 2**20, 2**20 + 1, 999_999_999):
        planned.clear()
        await tlog_tree.root(fetch, n)
        await tlog_tree.inclusion(fetch, rng.randrange(n), n)
        await tlog_tree.inclusion(fetch, n - 1, n)
        await tlog_tree.consistency(fetch, rng.randrange(1, n), n)
        assert len(planned) == 4 and max(len(p) for p in planned) <= _read_bound(n), [len(p) for p in planned]


def test_spans_that_are_not_rfc_subtrees_are_refused() -> None:
    assert tlog_tree.span_nodes(8, 13) == [(2, 2), (0, 12)]
    with pytest.raises(ValueError, match="not a subtree"):
        tlog_tree.span_nodes(2, 7)
    with pytest.raises(IndexError):
        tlog_tree.inclusion_spans(5, 5)
    with pytest.raises(IndexError):
        tlog_tree.consistency_spans(6, 5)


# ---- the store (SQLite and PostgreSQL) ----------------------------------------------------------

def _events(tenant: str | None, n: int, tag: str) -> list[dict[str, object]]:
    return [{"tenant_id": tenant, "action": "test.event", "details": {"tag": tag, "i": i}} for i in range(n)]


async def _assert_matches_reference(store: Store, tlog: TransparencyLog, log_id: str, rng: random.Random) -> int:
    leaves = await store.leaf_hashes(log_id)
    n = len(leaves)
    head = await tlog.sign_head(log_id)
    assert (head.tree_size, head.root_hash) == (n, root_hash(leaves))
    for i in {0, n - 1, rng.randrange(n)}:
        proof = await tlog.inclusion(log_id, i, n)
        assert proof == inclusion_proof(leaves, i)
        verify_inclusion(leaves[i], i, n, proof, head.root_hash)
    for m in {1, n - 1, rng.randrange(1, n + 1)}:
        for second in {m, n, rng.randrange(m, n + 1)}:
            assert await tlog.consistency(log_id, m, second) == consistency_proof(leaves[:second], m), (m, second)
    return n


async def test_store_heads_and_proofs_equal_the_reference_across_odd_append_batches(store: Store) -> None:
    tlog = TransparencyLog(store, MASTER_KEY)
    rng = random.Random(42)
    sizes = {"t-a": 0, "platform": 0}
    for batch, (na, nb) in enumerate([(1, 0), (2, 3), (5, 1), (7, 0), (13, 2), (1, 1), (31, 4), (3, 17)]):
        events = _events("t-a", na, f"a{batch}") + _events(None, nb, f"p{batch}")
        rng.shuffle(events)                              # the two logs' leaves interleave within a batch
        await store.write_audit_events(events)
        sizes["t-a"] += na
        sizes["platform"] += nb
        for log_id, expected in sizes.items():
            if expected:
                assert await _assert_matches_reference(store, tlog, log_id, rng) == expected
    with pytest.raises(IndexError):
        await tlog.inclusion("t-a", 0, sizes["t-a"] + 1)
    with pytest.raises(IndexError):
        await tlog.consistency("t-a", 1, sizes["t-a"] + 1)


async def test_a_log_that_grew_before_nodes_were_stored_is_caught_up_on_append_read_and_backfill(
    store: Store,
) -> None:
    tlog = TransparencyLog(store, MASTER_KEY)
    rng = random.Random(7)
    await store.write_audit_events(_events("t-old", 45, "old") + _events("t-other", 9, "other"))
    async with store.db.transaction() as conn:      # as the log stood before migration 0004
        await conn.execute("DELETE FROM tlog_nodes")

    await store.write_audit_events(_events("t-old", 6, "new"))        # append: catches up, then extends
    assert await _assert_matches_reference(store, tlog, "t-old", rng) == 51
    assert await _assert_matches_reference(store, tlog, "t-other", rng) == 9   # read: catches up lazily

    async with store.db.transaction() as conn:
        await conn.execute("DELETE FROM tlog_nodes")
    assert await store.backfill_transparency() == 0                      # startup: catches every log up
    stored = await store.db.fetchval("SELECT count(*) FROM tlog_nodes")
    assert stored == sum(51 >> k for k in range(1, 6)) + sum(9 >> k for k in range(1, 4))
    assert await _assert_matches_reference(store, tlog, "t-old", rng) == 51


async def test_a_node_beyond_the_log_is_an_error_not_a_guess(store: Store) -> None:
    await store.write_audit_events(_events("t-small", 3, "s"))
    assert set(await store.tree_nodes("t-small", [(1, 0), (0, 2)])) == {(1, 0), (0, 2)}
    with pytest.raises(StoreError, match="smaller than asked"):
        await store.tree_nodes("t-small", [(2, 0)])


async def test_editing_a_stored_leaf_hash_breaks_its_proof_against_the_signed_head(store: Store) -> None:
    tlog = TransparencyLog(store, MASTER_KEY)
    await store.write_audit_events(_events("t-x", 11, "x"))
    head = await tlog.sign_head("t-x")
    forged = hashlib.sha256(b"\x00forged").digest()
    async with store.db.transaction() as conn:
        await conn.execute("UPDATE tlog_leaves SET leaf_hash = $1 WHERE log_id = $2 AND leaf_index = 6", forged, "t-x")
    assert (await tlog.sign_head("t-x")).root_hash == head.root_hash   # stored subtrees keep the signed history
    leaf = await store.leaf_hash_at("t-x", 6)
    assert leaf == forged
    with pytest.raises(ProofError, match="does not lead to the tree head's root hash"):
        verify_inclusion(leaf, 6, 11, await tlog.inclusion("t-x", 6, 11), head.root_hash)


async def test_editing_a_stored_node_is_caught_by_the_consistency_proof_from_an_earlier_head(store: Store) -> None:
    tlog = TransparencyLog(store, MASTER_KEY)
    await store.write_audit_events(_events("t-y", 12, "y"))
    old = await tlog.sign_head("t-y")
    await store.write_audit_events(_events("t-y", 9, "more"))
    async with store.db.transaction() as conn:     # rewrite history: the subtree over leaves 0..7
        await conn.execute("UPDATE tlog_nodes SET hash = $1 WHERE log_id = $2 AND level = 3 AND idx = 0",
                           hashlib.sha256(b"rewritten").digest(), "t-y")
    new = await tlog.sign_head("t-y")
    proof = await tlog.consistency("t-y", old.tree_size, new.tree_size)
    with pytest.raises(ProofError, match="first tree head's root"):
        verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)


async def test_node_lookups_probe_the_primary_key_instead_of_scanning_the_log(tmp_path: Path) -> None:
    from admin_api.store import open_store
    from admin_api.store.tlog_nodes import _fetch_sql

    store = await open_store(f"sqlite:///{tmp_path}/plan.db", master_key=MASTER_KEY)
    try:
        await store.write_audit_events(_events("t-plan", 40, "plan"))
        args = ["t-plan", 5, -1, 1, 2, 3, 4, *[0, -1] * 6]
        plan = [r["detail"] for r in await store.db.fetch("EXPLAIN QUERY PLAN " + _fetch_sql(2, 8), *args)]
    finally:
        await store.close()
    assert not [step for step in plan if step.startswith("SCAN")], plan
    assert "SEARCH tlog_nodes USING PRIMARY KEY (log_id=? AND level=? AND idx=?)" in plan


async def test_nodes_deleted_by_hand_below_the_right_edge_are_rebuilt_from_the_leaves(store: Store) -> None:
    tlog = TransparencyLog(store, MASTER_KEY)
    await store.write_audit_events(_events("t-z", 37, "z"))
    async with store.db.transaction() as conn:     # the right edge of 37 = 32 + 4 + 1 loses its 32-leaf subtree
        await conn.execute("DELETE FROM tlog_nodes WHERE log_id = $1 AND level = 5", "t-z")
    assert await _assert_matches_reference(store, tlog, "t-z", random.Random(3)) == 37
    assert await store.db.fetchval("SELECT count(*) FROM tlog_nodes WHERE log_id = $1", "t-z") == sum(
        37 >> k for k in range(1, 6))
