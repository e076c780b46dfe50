"""A local append-only journal for records the store could not take yet (JSON Lines, fsync'ed).

Each worker process writes its own file (`<name>-journal-<worker>.jsonl`): two processes sharing
one file could lose records, one replaying and removing the file while the other appends to it.
Files nobody owns any more (a worker index beyond the current worker count, or the single-file
name of older versions) are adopted by worker 0 and replayed before its own, so a restart with
fewer workers loses nothing either.

Replay is in order and all-or-nothing per file: entries are handed to the writer in batches, and
the file is removed only when every entry was taken; otherwise what was not taken is rewritten
(atomically, through a temporary file) and kept for the next attempt.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("casemate.journal")

Write = Callable[[list[Any]], Awaitable[bool]]


class Journal:
    def __init__(self, directory: Path, name: str, *, worker: int = 0, workers: int = 1) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.path = self.directory / f"{name}-journal-{worker}.jsonl"
        self._worker = worker
        self._workers = workers

    # -- writing ---------------------------------------------------------------------------------
    def append(self, records: Iterable[Any]) -> int:
        """Append records (JSON values) and fsync; returns how many were written."""
        n = 0
        with open(self.path, "ab") as fh:
            for rec in records:
                fh.write(orjson.dumps(rec, default=str) + b"\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        return n

    # -- state -----------------------------------------------------------------------------------
    def files(self) -> list[Path]:
        """The files this worker replays, adopted orphans first, each non-empty."""
        found = []
        if self._worker == 0:
            pattern = re.compile(rf"^{re.escape(self.name)}-journal(?:-(\d+))?\.jsonl$")
            for entry in sorted(self.directory.iterdir()):
                m = pattern.match(entry.name)
                if m and entry != self.path and (m.group(1) is None or int(m.group(1)) >= self._workers):
                    found.append(entry)
        found.append(self.path)
        return [p for p in found if _size(p) > 0]

    @property
    def size_bytes(self) -> int:
        return sum(_size(p) for p in self.files())

    def pending(self) -> bool:
        return _size(self.path) > 0 or (self._worker == 0 and bool(self.files()))

    # -- replay ----------------------------------------------------------------------------------
    async def replay(self, write: Write, batch: int) -> bool:
        """Hand every journaled record to `write` in order, in batches; True when all were taken."""
        for path in self.files():
            if not await self._replay_file(path, write, batch):
                return False
        return True

    async def _replay_file(self, path: Path, write: Write, batch: int) -> bool:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return True
        entries = []
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                entries.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.error("skipping a torn %s journal line of %d bytes", self.name, len(line))
        for i in range(0, len(entries), batch):
            if not await write(entries[i:i + batch]):
                _rewrite(path, entries[i:])
                return False
        path.unlink(missing_ok=True)
        log.info("replayed %d journaled %s records from %s", len(entries), self.name, path.name)
        return True

    def dead_letter(self, record: Any, error: BaseException) -> None:
        """Keep a record the store refuses in itself (never retried automatically) beside the journal."""
        path = self.directory / f"{self.name}-deadletter.jsonl"
        with open(path, "ab") as fh:
            fh.write(orjson.dumps({"record": record, "error": f"{error.__class__.__name__}: {error}"[:500]},
                                  default=str) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _rewrite(path: Path, entries: list[Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        for rec in entries:
            fh.write(orjson.dumps(rec, default=str) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
