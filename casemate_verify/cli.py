"""`python -m casemate_verify` (or `casemate-verify`): check Casemate transparency-log evidence offline.

    casemate-verify event BUNDLE.json --public-key KEY
        BUNDLE is the `data` of GET /api/v1/audit/events/{id}/proof:
        {"event": {...}, "leaf_index": n, "proof": [hex...], "sth": {...}}
    casemate-verify consistency OLD_STH.json NEW_STH.json PROOF.json --public-key KEY
        PROOF is the `data` of GET /api/v1/transparency-log/consistency (or just its list of hex hashes)
    casemate-verify log STH.json ENTRIES.jsonl --public-key KEY
        ENTRIES is GET /api/v1/transparency-log/entries: one line per leaf, in order; an event, or
        {"leaf_index": n, "leaf_hash": hex, "purged": true} for an event removed by retention.

KEY: the log's Ed25519 public key, base64 or hex of the 32 raw bytes (or @FILE holding it), as listed
by GET /api/v1/transparency-log/keys. Exit status: 0 valid, 1 invalid (the reason is printed), 2 usage.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from casemate_verify.canonical import leaf_hash
from casemate_verify.merkle import (
    ProofError,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from casemate_verify.sth import TreeHead, verify_tree_head


def parse_public_key(text: str) -> bytes:
    """Raw 32 bytes from base64 or hex text, or from a file named `@path`."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise ProofError("public key is neither hex nor base64") from None
    if len(raw) != 32:
        raise ProofError("public key must be 32 bytes")
    return raw


def _hashes(values: Iterable[Any], what: str) -> list[bytes]:
    try:
        return [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        raise ProofError(f"{what} must be a list of hex hashes") from None


def _unwrap(doc: Any) -> Any:
    """Accept an API envelope as well as its `data`."""
    if isinstance(doc, dict) and "data" in doc and "meta" in doc:
        return doc["data"]
    return doc


def verify_event_bundle(bundle: dict[str, Any], public_key: bytes) -> str:
    """Check one event against a signed tree head; returns a success message or raises ProofError."""
    bundle = _unwrap(bundle)
    try:
        event, index, proof, sth = bundle["event"], int(bundle["leaf_index"]), bundle["proof"], bundle["sth"]
    except (KeyError, TypeError, ValueError):
        raise ProofError("bundle needs event, leaf_index, proof and sth") from None
    head = TreeHead.from_json(sth)
    verify_tree_head(head, public_key)
    try:
        leaf = leaf_hash(event)
    except (TypeError, ValueError) as exc:
        raise ProofError(f"event cannot be canonicalised: {exc}") from None
    verify_inclusion(leaf, index, head.tree_size, _hashes(proof, "proof"), head.root_hash)
    return f"valid: event {event.get('id')} is leaf {index} of log {head.log_id} (size {head.tree_size})"


def verify_consistency_files(old: dict[str, Any], new: dict[str, Any], proof: Any, public_key: bytes) -> str:
    first, second = TreeHead.from_json(_unwrap(old)), TreeHead.from_json(_unwrap(new))
    if first.log_id != second.log_id:
        raise ProofError(f"tree heads belong to different logs ({first.log_id}, {second.log_id})")
    verify_tree_head(first, public_key)
    verify_tree_head(second, public_key)
    proof = _unwrap(proof)
    if isinstance(proof, dict):
        proof = proof.get("proof")
    verify_consistency(first.tree_size, second.tree_size, first.root_hash, second.root_hash,
                       _hashes(proof or [], "proof"))
    return f"valid: log {first.log_id} of size {first.tree_size} is a prefix of size {second.tree_size}"


def verify_log(sth: dict[str, Any], entries: Iterable[str], public_key: bytes) -> str:
    """Recompute the whole tree from every entry and compare with the signed root."""
    head = TreeHead.from_json(_unwrap(sth))
    verify_tree_head(head, public_key)
    leaves: list[bytes] = []
    purged = 0
    for number, line in enumerate(entries, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            index = int(entry["leaf_index"])
        except (ValueError, KeyError, TypeError):
            raise ProofError(f"entries line {number} is not an entry with a leaf_index") from None
        if index >= head.tree_size:
            break
        if index != len(leaves):
            raise ProofError(f"leaf {len(leaves)} is missing (line {number} holds leaf {index}): an event was deleted")
        if "id" not in entry and not entry.get("purged"):
            raise ProofError(f"leaf {index} has no event and retention did not purge it: the event was deleted")
        if entry.get("purged"):
            leaves.extend(_hashes([entry.get("leaf_hash")], f"leaf_hash on line {number}"))
            purged += 1
            continue
        try:
            leaf = leaf_hash(entry)
        except (TypeError, ValueError) as exc:
            raise ProofError(f"event on line {number} cannot be canonicalised: {exc}") from None
        stored = entry.get("leaf_hash")
        if stored is not None and stored != leaf.hex():
            raise ProofError(f"event {entry.get('id')} (leaf {index}) does not match its leaf hash: it was edited")
        leaves.append(leaf)
    if len(leaves) != head.tree_size:
        raise ProofError(f"entries hold {len(leaves)} leaves but the tree head says {head.tree_size}: leaves are missing")
    if root_hash(leaves) != head.root_hash:
        raise ProofError("the entries do not hash to the signed root: an event was edited, added or removed")
    return f"valid: {head.tree_size} leaves of log {head.log_id} ({purged} purged by retention) match the signed root"


def _load(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProofError(f"cannot read {path}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="casemate-verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--public-key", required=True, help="Ed25519 public key (base64, hex, or @file)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("event", help="one event against a signed tree head")
    p.add_argument("bundle")
    p = sub.add_parser("consistency", help="an older tree head is a prefix of a newer one")
    p.add_argument("old_sth")
    p.add_argument("new_sth")
    p.add_argument("proof")
    p = sub.add_parser("log", help="every entry of a log against a signed tree head")
    p.add_argument("sth")
    p.add_argument("entries")
    args = parser.parse_args(argv)
    try:
        key = parse_public_key(args.public_key)
        if args.command == "event":
            message = verify_event_bundle(_load(args.bundle), key)
        elif args.command == "consistency":
            message = verify_consistency_files(_load(args.old_sth), _load(args.new_sth), _load(args.proof), key)
        else:
            try:
                with open(args.entries, encoding="utf-8") as fh:
                    message = verify_log(_load(args.sth), fh, key)
            except OSError as exc:
                raise ProofError(f"cannot read {args.entries}: {exc}") from None
    except ProofError as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0
