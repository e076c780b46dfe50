"""RFC 9162 Merkle tree hashes and proofs over a list of leaf hashes.

Node hash = SHA-256(0x01 || left || right); leaves are already hashed (0x00 prefix, see
`canonical.leaf_hash`). Generation (`root_hash`, `inclusion_proof`, `consistency_proof`) is
used by the server; verification (`verify_inclusion`, `verify_consistency`) follows the
algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2 and raises `ProofError` naming what failed.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(Exception):
    """A proof does not verify; the message says which check failed."""


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) computed bottom-up in O(n) time and O(log n) extra space."""
    if not leaves:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []           # (subtree size, hash): sizes strictly decrease
    for leaf in leaves:
        size, h = 1, leaf
        while stack and stack[-1][0] == size:
            _, left = stack.pop()
            h = node_hash(left, h)
            size *= 2
        stack.append((size, h))
    _, h = stack.pop()
    while stack:
        _, left = stack.pop()
        h = node_hash(left, h)
    return h


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 section 2.1.3.1."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index outside the tree")
    return _path(index, leaves, 0, len(leaves))


def _path(m: int, leaves: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return _path(m, leaves, lo, lo + k) + [root_hash(leaves[lo + k:hi])]
    return _path(m - k, leaves, lo + k, hi) + [root_hash(leaves[lo:lo + k])]


def consistency_proof(leaves: Sequence[bytes], first: int) -> list[bytes]:
    """PROOF(first, D[n]) of RFC 9162 section 2.1.4.1 for n = len(leaves)."""
    if not 0 <= first <= len(leaves):
        raise IndexError("first tree size outside the tree")
    if first in (0, len(leaves)):
        return []
    return _subproof(first, leaves, 0, len(leaves), True)


def _subproof(m: int, leaves: Sequence[bytes], lo: int, hi: int, complete: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if complete else [root_hash(leaves[lo:hi])]
    k = _split(n)
    if m <= k:
        return _subproof(m, leaves, lo, lo + k, complete) + [root_hash(leaves[lo + k:hi])]
    return _subproof(m - k, leaves, lo + k, hi, False) + [root_hash(leaves[lo:lo + k])]


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless `proof` shows `leaf` at `index` in the tree of `tree_size` with `root`."""
    if index >= tree_size or index < 0:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("inclusion proof does not lead to the tree head's root hash (the event or the log changed)")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Raise ProofError unless the tree of size `first` is a prefix of the tree of size `second`."""
    if first < 0 or first > second:
        raise ProofError(f"first size {first} is not between 0 and second size {second}")
    if first == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        return
    if first == second:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("the two tree heads have the same size but different roots")
        return
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    if not path:
        raise ProofError("consistency proof is empty")
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than expected")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than expected")
    if fr != first_root:
        raise ProofError("consistency proof does not reproduce the first tree head's root")
    if sr != second_root:
        raise ProofError("consistency proof does not reproduce the second tree head's root")
