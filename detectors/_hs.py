"""Tiny shared Hyperscan helpers for the detectors (stable: other detectors import them).

A database is compiled once at import or construction time, never per call. The
Python binding allocates scratch space per database; a detector object is used
from one thread at a time (the proxy runs detectors on its event-loop thread).

Compiling the detectors' rule sets takes seconds (about 16 s on a slow 2-core VM), and
every process start pays it. With ``CASEMATE_HS_CACHE_DIR`` set, a compiled database is
serialised there and later loaded in milliseconds instead. The file name is a SHA-256
over the Hyperscan version, the CPU's instruction-set flags, the mode and every
(pattern, flags) pair, so any change to a rule set or to the machine misses. Loading
untrusted bytes into Hyperscan can crash the process, so a cached file is used only when
its content matches the SHA-256 stored with it and when it, and its directory, belong to
the current user and are writable by no one else; anything else is ignored and the
database compiled (and stored again). Files are written atomically with mode 0600.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import stat
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import hyperscan

__all__ = [
    "compile_block",
    "compile_stream",
    "scan_ids",
    "scan_matches",
    "CACHE_DIR_ENV",
    "CASELESS",
    "SINGLEMATCH",
    "SOM",
    "UTF8",
    "DOTALL",
]

CASELESS = hyperscan.HS_FLAG_CASELESS
SINGLEMATCH = hyperscan.HS_FLAG_SINGLEMATCH
SOM = hyperscan.HS_FLAG_SOM_LEFTMOST
UTF8 = hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_UCP
DOTALL = hyperscan.HS_FLAG_DOTALL

#: Directory for compiled databases; unset or empty: always compile.
CACHE_DIR_ENV = "CASEMATE_HS_CACHE_DIR"
_DIGEST = hashlib.sha256().digest_size

log = logging.getLogger("casemate.detectors")


def compile_block(patterns: Sequence[str | bytes], flags: Sequence[int]) -> hyperscan.Database:
    """Compile ``patterns`` (pattern id = list index) into one block-mode database."""
    return _compile(hyperscan.HS_MODE_BLOCK, patterns, flags)


def compile_stream(patterns: Sequence[str | bytes], flags: Sequence[int]) -> hyperscan.Database:
    """Compile ``patterns`` (pattern id = list index) into one stream-mode database."""
    return _compile(hyperscan.HS_MODE_STREAM, patterns, flags)


def _compile(mode: int, patterns: Sequence[str | bytes], flags: Sequence[int]) -> hyperscan.Database:
    if len(patterns) != len(flags):
        raise ValueError("one flags value per pattern")
    exprs = [p.encode("utf-8") if isinstance(p, str) else p for p in patterns]
    directory = os.environ.get(CACHE_DIR_ENV, "")
    if not directory:
        return _build(mode, exprs, flags)
    path = Path(directory) / f"{_key(mode, exprs, flags)}.hsdb"
    db = _load(path, mode)
    if db is None:
        db = _build(mode, exprs, flags)
        _store(path, db)
    return db


def _build(mode: int, exprs: list[bytes], flags: Sequence[int]) -> hyperscan.Database:
    db = hyperscan.Database(mode=mode)
    db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=list(flags))
    return db


@lru_cache(maxsize=1)
def _machine() -> bytes:
    """What a serialised database depends on besides its patterns: Hyperscan's version and the CPU."""
    cpu_flags = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    cpu_flags = " ".join(sorted(line.split(":", 1)[1].split()))
                    break
    except OSError:
        pass
    return f"{hyperscan.__version__}|{platform.machine()}|{cpu_flags}".encode()


def _key(mode: int, exprs: list[bytes], flags: Sequence[int]) -> str:
    h = hashlib.sha256(_machine())
    h.update(f"|{mode}|{len(exprs)}".encode())
    for expr, flag in zip(exprs, flags):
        h.update(b"|%d|%d|" % (flag, len(expr)))
        h.update(expr)
    return h.hexdigest()


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


_warned: set[str] = set()


def _load(path: Path, mode: int) -> hyperscan.Database | None:
    try:
        st = path.lstat()
        if not (_private(path.parent.stat()) and _private(st) and stat.S_ISREG(st.st_mode)):
            if str(path.parent) not in _warned:
                _warned.add(str(path.parent))
                log.warning("not loading compiled detector databases from %s: the directory or a file in it is "
                            "not a regular file owned by this user and writable only by it", path.parent)
            return None
        raw = path.read_bytes()
    except OSError:
        return None
    digest, payload = raw[:_DIGEST], raw[_DIGEST:]
    if len(raw) <= _DIGEST or hashlib.sha256(payload).digest() != digest:
        log.warning("ignoring damaged compiled detector database %s", path)
        return None
    try:
        db = hyperscan.loadb(payload, mode)
        db.scratch = hyperscan.Scratch(db)
    except hyperscan.error:
        return None  # another Hyperscan build or CPU after all: compile
    return db


def _store(path: Path, db: hyperscan.Database) -> None:
    payload = hyperscan.dumpb(db)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hsdb-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(hashlib.sha256(payload).digest())
                fh.write(payload)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        log.debug("cannot store compiled detector database in %s: %s", path.parent, exc)


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
