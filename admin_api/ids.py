"""UUIDv7 identifiers (RFC 9562, method 1: 12-bit sub-millisecond counter).

Ids made by one process sort in creation order, even within one millisecond,
so audit events, change rows and request logs can be paged by id.
"""
from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A new, monotonically increasing (per process) UUIDv7."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF   # leave head-room for increments
        else:
            _counter += 1
            if _counter > 0xFFF:                                     # counter exhausted: borrow the next ms
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        counter = _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & 0x3FFFFFFFFFFFFFFF
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def new_id() -> str:
    """A new UUIDv7 in its canonical string form."""
    return str(uuid7())


def is_uuid(value: str) -> bool:
    """True when `value` is a canonical (lower-case, hyphenated) UUID string of any version."""
    try:
        return str(uuid.UUID(value)) == value
    except (ValueError, AttributeError, TypeError):
        return False
