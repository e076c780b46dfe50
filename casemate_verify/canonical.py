"""The canonical bytes of an audit event, and its leaf hash.

An event is reduced to its ten stored fields and serialised as JSON with sorted keys, no
whitespace, UTF-8 (no ASCII escaping). Values are normalised first so the bytes survive a
round trip through either database and through the API:

* `ts` becomes RFC 3339 UTC with exactly six fractional digits and a `Z`;
* a float with an integral value becomes an integer (PostgreSQL jsonb hands `1.0` back as `1`);
* NaN and infinities, which JSON cannot carry, become the strings "NaN", "Infinity", "-Infinity";
* a datetime inside `details` becomes its RFC 3339 string (as `ts`);
* an integer outside the signed 64-bit range becomes its decimal string.

leaf hash = SHA-256(0x00 || canonical bytes)   (RFC 9162 section 2.1.1)
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_AS_IS = frozenset({str, bool, type(None)})     # exact types that normalise to themselves
_INT_LIMIT = 2**63          # larger integers do not survive every JSON store: they become strings
EVENT_FIELDS = ("id", "tenant_id", "ts", "actor", "action", "resource_type", "resource_id", "outcome",
                "request_id", "details")


def normalize_json(value: Any) -> Any:
    """`value` with integral floats as ints, non-finite floats as strings, tuples as lists."""
    kind = type(value)
    if kind is str or value is None or kind is bool:      # the common cases, without the isinstance chain
        return value
    if kind is dict:      # scalar members are kept without a call each
        return {k if type(k) is str else str(k): v if type(v) in _AS_IS else normalize_json(v)
                for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _AS_IS else normalize_json(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -_INT_LIMIT < value < _INT_LIMIT else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): normalize_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize_json(v) for v in value]
    if isinstance(value, datetime):
        return canonical_ts(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def canonical_ts(value: datetime | str) -> str:
    """RFC 3339 UTC, microsecond precision, `Z` suffix."""
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if dt.tzinfo is None:
        raise ValueError("timestamp has no timezone")
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_event_bytes(event: Mapping[str, Any], *, details_normalized: bool = False) -> bytes:
    """The bytes hashed into the log for `event` (extra keys such as `leaf_index` are ignored).

    `details_normalized=True` is for a writer whose `details` already went through `normalize_json`
    (it is idempotent, so the bytes are the same either way; this only skips the second pass).
    """
    missing = [f for f in ("id", "ts", "actor", "action", "outcome") if event.get(f) is None]
    if missing:
        raise ValueError(f"event lacks {', '.join(missing)}")
    doc = {f: event.get(f) for f in EVENT_FIELDS}
    doc["ts"] = canonical_ts(event["ts"])
    doc["details"] = (doc["details"] or {}) if details_normalized else normalize_json(doc["details"] or {})
    doc["resource_type"] = doc["resource_type"] or ""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def leaf_hash(event: Mapping[str, Any], *, details_normalized: bool = False) -> bytes:
    """SHA-256(0x00 || canonical bytes)."""
    return hashlib.sha256(b"\x00" + canonical_event_bytes(event, details_normalized=details_normalized)).digest()
