"""Value conversions shared by both backends' rows.

PostgreSQL hands back decoded JSON, aware datetimes and booleans; SQLite hands
back text and integers. These helpers accept both, so the repository code is
the same for either backend.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def utcnow() -> datetime:
    """Current time, timezone-aware UTC, microsecond precision."""
    return datetime.now(UTC)


def json_value(value: Any) -> Any:
    """A JSON column as a Python value (None stays None)."""
    if isinstance(value, (str, bytes)):
        return orjson.loads(value)
    return value


def dt_value(value: Any) -> datetime | None:
    """A timestamp column as an aware UTC datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def epoch(value: Any) -> float | None:
    """A timestamp column as unix seconds."""
    dt = dt_value(value)
    return None if dt is None else dt.timestamp()


def from_epoch(seconds: float | None) -> datetime | None:
    """Unix seconds as an aware UTC datetime."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def str_tuple(value: Any) -> tuple[str, ...] | None:
    """A JSON array column as a tuple of strings (None stays None)."""
    v = json_value(value)
    return None if v is None else tuple(str(x) for x in v)


def isoformat(value: datetime | None) -> str | None:
    """RFC 3339 UTC with a `Z` suffix."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
