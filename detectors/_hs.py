"""Tiny shared Hyperscan helpers for the detectors (stable: other detectors import them).

A database is compiled once at import or construction time, never per call. The
Python binding allocates scratch space per database; a detector object is used
from one thread at a time (the proxy runs detectors on its event-loop thread).
"""

from __future__ import annotations

from collections.abc import Sequence

import hyperscan

__all__ = ["compile_block", "scan_ids", "scan_matches", "CASELESS", "SINGLEMATCH", "SOM", "UTF8", "DOTALL"]

CASELESS = hyperscan.HS_FLAG_CASELESS
SINGLEMATCH = hyperscan.HS_FLAG_SINGLEMATCH
SOM = hyperscan.HS_FLAG_SOM_LEFTMOST
UTF8 = hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_UCP
DOTALL = hyperscan.HS_FLAG_DOTALL


def compile_block(patterns: Sequence[str | bytes], flags: Sequence[int]) -> hyperscan.Database:
    """Compile ``patterns`` (pattern id = list index) into one block-mode database."""
    if len(patterns) != len(flags):
        raise ValueError("one flags value per pattern")
    exprs = [p.encode("utf-8") if isinstance(p, str) else p for p in patterns]
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=list(flags))
    return db


def scan_ids(db: hyperscan.Database, data: bytes) -> set[int]:
    """Ids of the patterns that match anywhere in ``data`` (use SINGLEMATCH patterns)."""
    found: set[int] = set()
    add = found.add

    def on_match(pid: int, start: int, end: int, flags: int, ctx: object) -> None:
        add(pid)

    db.scan(data, match_event_handler=on_match)
    return found


def scan_matches(db: hyperscan.Database, data: bytes) -> list[tuple[int, int, int]]:
    """Every reported match as ``(pattern id, start, end)`` byte offsets (start is 0 without SOM)."""
    found: list[tuple[int, int, int]] = []
    append = found.append

    def on_match(pid: int, start: int, end: int, flags: int, ctx: object) -> None:
        append((pid, start, end))

    db.scan(data, match_event_handler=on_match)
    return found
