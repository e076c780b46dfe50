"""RFC 9162 tree hashing and proofs as the verifier implements them."""
from __future__ import annotations

import hashlib

import pytest

from casemate_verify.canonical import canonical_event_bytes, leaf_hash
from casemate_verify.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)


def _reference_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 section 2.1.1 defines it (recursive split at the largest power of two)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(n)]


def test_root_hash_matches_the_rfc_definition_for_every_size_up_to_70() -> None:
    for n in range(71):
        assert root_hash(_leaves(n)) == _reference_root(_leaves(n)), n


def test_every_inclusion_proof_verifies_and_a_changed_leaf_or_index_does_not() -> None:
    for n in range(1, 34):
        leaves = _leaves(n)
        root = root_hash(leaves)
        for i in range(n):
            proof = inclusion_proof(leaves, i)
            verify_inclusion(leaves[i], i, n, proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(hashlib.sha256(b"other").digest(), i, n, proof, root)
            if n > 1:
                with pytest.raises(ProofError):
                    verify_inclusion(leaves[i], (i + 1) % n, n, proof, root)


def test_every_consistency_proof_verifies_and_a_rewritten_history_does_not() -> None:
    for n in range(1, 34):
        leaves = _leaves(n)
        for m in range(n + 1):
            proof = consistency_proof(leaves, m)
            verify_consistency(m, n, root_hash(leaves[:m]), root_hash(leaves), proof)
            if 0 < m < n:
                forged = list(leaves)
                forged[m - 1] = hashlib.sha256(b"rewritten").digest()
                with pytest.raises(ProofError):
                    verify_consistency(m, n, root_hash(forged[:m]), root_hash(leaves), proof)


def test_inclusion_proof_of_wrong_length_names_the_failure() -> None:
    leaves = _leaves(8)
    proof = inclusion_proof(leaves, 3)
    with pytest.raises(ProofError, match="shorter"):
        verify_inclusion(leaves[3], 3, 8, proof[:-1], root_hash(leaves))
    with pytest.raises(ProofError, match="longer"):
        verify_inclusion(leaves[3], 3, 8, proof + [proof[0]], root_hash(leaves))


def test_canonical_bytes_survive_database_and_api_round_trips() -> None:
    event = {"id": "0192a0b0-0000-7000-8000-000000000001", "tenant_id": "t", "ts": "2026-01-02T03:04:05.5+00:00",
             "actor": "user:u", "action": "key.revoke", "resource_type": "key", "resource_id": "k",
             "outcome": "success", "request_id": None, "details": {"b": 1.0, "a": [2.5, "é"], "n": float("nan")}}
    api_form = {**event, "ts": "2026-01-02T03:04:05.500000Z", "details": {"a": [2.5, "é"], "b": 1, "n": "NaN"},
                "leaf_index": 7}
    assert canonical_event_bytes(event) == canonical_event_bytes(api_form)
    assert leaf_hash(event) == hashlib.sha256(b"\x00" + canonical_event_bytes(event)).digest()
    assert b'"ts":"2026-01-02T03:04:05.500000Z"' in canonical_event_bytes(event)
    assert leaf_hash({**event, "outcome": "denied"}) != leaf_hash(event)


def test_values_a_json_store_cannot_keep_are_normalised_before_hashing() -> None:
    from casemate_verify.canonical import normalize_json

    assert normalize_json({"big": 2**70, "ok": 2**62, "t": (1, 2.0)}) == {"big": str(2**70), "ok": 2**62, "t": [1, 2]}
