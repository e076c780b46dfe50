"""Standalone verifier for Casemate's transparency log (RFC 9162-style Merkle tree over audit events).

Depends on the standard library and `cryptography` (Ed25519) only, so an auditor can run it
without installing Casemate: `python -m casemate_verify --help`.
"""
from casemate_verify.canonical import canonical_event_bytes, leaf_hash
from casemate_verify.merkle import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from casemate_verify.sth import TreeHead, key_id_of, sth_message, verify_tree_head

__all__ = [
    "ProofError", "TreeHead", "canonical_event_bytes", "consistency_proof", "inclusion_proof", "key_id_of",
    "leaf_hash", "root_hash", "sth_message", "verify_consistency", "verify_inclusion", "verify_tree_head",
]
