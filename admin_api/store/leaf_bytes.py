"""Leaf hashes for the audit writer, byte-identical to `casemate_verify.canonical` but cheaper.

The reference (`casemate_verify.canonical.leaf_hash`) is stdlib-only on purpose: auditors run it
without our dependencies. Its `json.dumps` dominates the cost of writing an audit event, so the
writer serialises with orjson instead whenever orjson's bytes are provably the same:

* strings, ints, booleans and null: orjson with sorted keys writes what `json.dumps(sort_keys=True,
  separators=(",", ":"), ensure_ascii=False)` writes (escapes, key order by code point);
* floats: both print the shortest round-trip form, except below 1e-4 in magnitude, where
  `json.dumps` writes `1e-05` and orjson `0.00001` (or `1e-7` for `1e-07`); such a document, and
  anything orjson refuses (deep nesting, a lone surrogate), goes through the reference instead.

`tests/evidence/test_leaf_bytes.py` checks the equality on random documents.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from casemate_verify.canonical import EVENT_FIELDS, canonical_ts, leaf_hash

__all__ = ["fast_leaf_hash"]

_TINY = 1e-4
_SCALARS = frozenset({str, int, bool, type(None)})


def _prints_alike(value: Any) -> bool:
    """No float in `value` that orjson prints differently from `json.dumps`."""
    kind = type(value)
    if kind is float:
        return value == 0.0 or abs(value) >= _TINY
    if kind is dict:
        return all(type(v) in _SCALARS or _prints_alike(v) for v in value.values())
    if kind is list:
        return all(type(v) in _SCALARS or _prints_alike(v) for v in value)
    return kind in _SCALARS


def _utc_ts(value: Any) -> str:
    if type(value) is datetime and value.tzinfo is UTC and value.year >= 1000:
        return value.isoformat(timespec="microseconds")[:-6] + "Z"    # what canonical_ts' strftime gives
    return canonical_ts(value)


def fast_leaf_hash(event: Mapping[str, Any]) -> bytes:
    """`leaf_hash(event, details_normalized=True)`: `event["details"]` went through `normalize_json`."""
    if all(event.get(f) is not None for f in ("id", "ts", "actor", "action", "outcome")):
        doc = {f: event.get(f) for f in EVENT_FIELDS}
        doc["ts"] = _utc_ts(doc["ts"])
        doc["details"] = doc["details"] or {}
        doc["resource_type"] = doc["resource_type"] or ""
        if _prints_alike(doc):
            try:
                body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            except orjson.JSONEncodeError:
                pass
            else:
                return hashlib.sha256(b"\x00" + body).digest()
    return leaf_hash(event, details_normalized=True)
