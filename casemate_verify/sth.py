"""Signed tree heads: what is signed, and how a signature is checked.

Signed message = b"casemate-sth/v1\\n" followed by the canonical JSON (sorted keys, no spaces) of
`{"log_id", "tree_size", "root_hash" (hex), "timestamp" (unix milliseconds)}`. Signature: Ed25519.
Key id: the first 8 bytes of SHA-256 of the raw 32-byte public key, hex.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from casemate_verify.merkle import ProofError

DOMAIN = b"casemate-sth/v1\n"


@dataclass(frozen=True, slots=True)
class TreeHead:
    log_id: str
    tree_size: int
    root_hash: bytes
    timestamp: int                   # unix milliseconds
    key_id: str
    signature: bytes

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TreeHead:
        """Read the API's `sth` object (hex root hash, base64 signature)."""
        try:
            return cls(str(doc["log_id"]), int(doc["tree_size"]), bytes.fromhex(doc["root_hash"]),
                       int(doc["timestamp"]), str(doc["key_id"]), base64.b64decode(doc["signature"], validate=True))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ProofError(f"tree head is malformed: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {"log_id": self.log_id, "tree_size": self.tree_size, "root_hash": self.root_hash.hex(),
                "timestamp": self.timestamp, "key_id": self.key_id,
                "signature": base64.b64encode(self.signature).decode()}


def sth_message(log_id: str, tree_size: int, root_hash: bytes, timestamp: int) -> bytes:
    body = {"log_id": log_id, "tree_size": tree_size, "root_hash": root_hash.hex(), "timestamp": timestamp}
    return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def key_id_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).digest()[:8].hex()


def verify_tree_head(head: TreeHead, public_key: bytes) -> None:
    """Raise ProofError unless `head` is signed by `public_key` (raw 32 bytes)."""
    if len(public_key) != 32:
        raise ProofError("the public key must be 32 raw bytes (Ed25519)")
    if head.key_id != key_id_of(public_key):
        raise ProofError(f"tree head was signed by key {head.key_id}, not by the given key {key_id_of(public_key)}")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            head.signature, sth_message(head.log_id, head.tree_size, head.root_hash, head.timestamp))
    except InvalidSignature:
        raise ProofError("tree head signature is invalid") from None
