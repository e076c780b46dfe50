"""RFC 9162 tree heads and proofs from stored complete subtrees, in O(log n) node reads.

A node `(level, index)` is MTH(D[index * 2**level : (index + 1) * 2**level]): the hash of a
complete, aligned subtree (level 0 is the leaf hash itself). Once its last leaf is appended a
node never changes, so the store keeps every node of level >= 1 (`tlog_nodes`) next to the
leaves, written by `Frontier.append` in the transaction that appends the leaves.

Every subtree an RFC 9162 root or proof needs is either one such node or a right-edge subtree
D[lo:n] whose hash folds the O(log n) nodes of n - lo's binary decomposition. So a head or
proof is planned (`inclusion_spans`, `consistency_spans`), its nodes are read in one call of a
`NodeFetch`, and the few hashes are combined here. Results are byte-identical to the
reference functions in `casemate_verify.merkle`.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from casemate_verify.merkle import EMPTY_ROOT, node_hash

Node = tuple[int, int]
"""(level, index): the complete subtree over leaves [index * 2**level, (index + 1) * 2**level)."""

Span = tuple[int, int]
"""[lo, hi): the leaves of one RFC 9162 subtree."""

NodeFetch = Callable[[list[Node]], Awaitable[Mapping[Node, bytes]]]
"""Reads the hashes of the given nodes of one log (all of them, or raises)."""


def span_nodes(lo: int, hi: int) -> list[Node]:
    """The complete nodes that make up D[lo:hi], left to right (largest first).

    Holds for every subtree of RFC 9162's recursive split: `lo` is a multiple of the largest
    piece; anything else raises ValueError.
    """
    nodes: list[Node] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo & ((1 << level) - 1):
            raise ValueError(f"[{lo}, {hi}) is not a subtree of an RFC 9162 tree")
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of consecutive complete subtrees of strictly decreasing size, given left to right."""
    if not hashes:
        return EMPTY_ROOT
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_spans(index: int, size: int) -> list[Span]:
    """The subtrees whose hashes form PATH(index, D[size]) (RFC 9162 section 2.1.3.1), in proof order."""
    if not 0 <= index < size:
        raise IndexError("leaf index outside the tree")
    spans: list[Span] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            spans.append((lo + k, hi))
            hi = lo + k
        else:
            spans.append((lo, lo + k))
            lo += k
    spans.reverse()
    return spans


def consistency_spans(first: int, second: int) -> list[Span]:
    """The subtrees whose hashes form PROOF(first, D[second]) (RFC 9162 section 2.1.4.1), in proof order."""
    if not 0 <= first <= second:
        raise IndexError("first tree size outside the tree")
    if first in (0, second):
        return []
    spans: list[Span] = []
    lo, hi, m, complete = 0, second, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            spans.append((lo + k, hi))
            hi = lo + k
        else:
            spans.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        spans.append((lo, hi))
    spans.reverse()
    return spans


async def span_hashes(fetch: NodeFetch, spans: Sequence[Span]) -> list[bytes]:
    """MTH of each span, reading every node they need in one fetch."""
    pieces = [span_nodes(lo, hi) for lo, hi in spans]
    wanted = list(dict.fromkeys(node for nodes in pieces for node in nodes))
    found = await fetch(wanted) if wanted else {}
    return [fold([found[node] for node in nodes]) for nodes in pieces]


async def root(fetch: NodeFetch, size: int) -> bytes:
    """MTH(D[size])."""
    (h,) = await span_hashes(fetch, [(0, size)])
    return h


async def inclusion(fetch: NodeFetch, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size])."""
    return await span_hashes(fetch, inclusion_spans(index, size))


async def consistency(fetch: NodeFetch, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second])."""
    return await span_hashes(fetch, consistency_spans(first, second))


@dataclass(slots=True)
class Frontier:
    """The right edge of a tree of `size` leaves: one complete node per set bit of `size`.

    `stack` holds (level, hash) with strictly decreasing levels, i.e. the nodes of
    `span_nodes(0, size)`. Appending leaves merges equal levels and reports each node of
    level >= 1 that the new leaves complete.
    """

    size: int
    stack: list[tuple[int, bytes]] = field(default_factory=list)

    @classmethod
    def of(cls, size: int, found: Mapping[Node, bytes]) -> Frontier:
        """The frontier of a tree of `size` leaves from its nodes (KeyError when one is missing)."""
        return cls(size, [(level, found[(level, index)]) for level, index in span_nodes(0, size)])

    def append(self, leaves: Iterable[bytes]) -> list[tuple[Node, bytes]]:
        """Add leaf hashes at the end; returns the completed nodes of level >= 1, bottom-up per leaf."""
        done: list[tuple[Node, bytes]] = []
        for leaf in leaves:
            pos, level, h = self.size, 0, leaf
            while self.stack and self.stack[-1][0] == level:
                h = node_hash(self.stack.pop()[1], h)
                level += 1
                done.append(((level, pos >> level), h))
            self.stack.append((level, h))
            self.size += 1
        return done
