"""UUIDv7 (RFC 9562): time-ordered ids for requests, events and rows.

The 74 random bits come from a PRNG seeded from os.urandom per process: ids must
be unique and ordered, not secret (nothing authorises by id), and this keeps a
syscall off every request.
"""
from __future__ import annotations

import os
import random
import time
import uuid

_rng = random.Random(os.urandom(32))
_getrandbits = _rng.getrandbits
_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)


def _reseed_after_fork() -> None:
    _rng.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed_after_fork)


def _uuid7_int() -> int:
    ms = time.time_ns() // 1_000_000
    rand = _getrandbits(74)
    return ((ms & 0xFFFFFFFFFFFF) << 80) | _VERSION_VARIANT | ((rand >> 62) << 64) | (rand & 0x3FFFFFFFFFFFFFFF)


def uuid7() -> uuid.UUID:
    return uuid.UUID(int=_uuid7_int())


def uuid7_str() -> str:
    h = "%032x" % _uuid7_int()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
