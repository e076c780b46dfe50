"""UUIDv7 (RFC 9562): time-ordered ids for requests, events and rows."""
from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFFFFFFFFFF) << 80
    value |= 0x7 << 76                                  # version 7
    value |= ((rand >> 64) & 0xFFF) << 64               # rand_a (12 bits)
    value |= 0b10 << 62                                 # variant
    value |= rand & 0x3FFFFFFFFFFFFFFF                  # rand_b (62 bits)
    return uuid.UUID(int=value)


def uuid7_str() -> str:
    return str(uuid7())
