"""The wall clock as the API prints it: RFC 3339 UTC with milliseconds (`2026-11-24T21:04:20.123Z`)."""
from __future__ import annotations

import time

_second = -1
_prefix = ""


def now_rfc3339() -> str:
    """The current time; the date-and-seconds part is formatted once per second, only the milliseconds
    change between calls (this runs several times per request)."""
    global _second, _prefix
    now = time.time()
    second = int(now)
    if second != _second:
        _prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    return f"{_prefix}.{int((now - second) * 1000):03d}Z"
