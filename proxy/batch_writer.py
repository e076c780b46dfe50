"""A bounded queue of rows written to the store in batches by one background task, losing nothing.

Used for tool-call traces and anomaly events. Rows carry their own ids and the store's inserts
are idempotent on id, so a replay may repeat rows safely.

- The store is down or slow (a batch write fails and the store does not answer a ping): the
  batch and everything queued behind it go to the local journal (`proxy/journal.py`, fsync'ed)
  and are replayed in order, before newer rows, once the store answers again.
- The store answers but refuses a batch: rows are written one by one and the ones refused in
  themselves go to the dead-letter file, so one bad row never blocks the rest.
- The queue is full: the row goes to the journal instead of being dropped.
- Shutdown: whatever the store does not take is journaled.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from proxy.journal import Journal

log = logging.getLogger("casemate.batches")

WriteRows = Callable[[list[dict[str, Any]]], Awaitable[None]]
Ping = Callable[[], Awaitable[None]]


T = TypeVar("T")


@dataclass(slots=True)
class WriteOutcome(Generic[T]):
    """What `write_sorting_out` managed: `error` is None when the batch went in whole."""

    error: Exception | None = None
    store_down: bool = False                                   # the store did not answer a ping
    refused: list[tuple[T, Exception]] = field(default_factory=list)   # written one by one, these failed


async def write_sorting_out(items: list[T], write: Callable[[list[T]], Awaitable[None]],
                            ping: Ping) -> WriteOutcome[T]:
    """Write `items` in one call; when that fails, tell a store that is down (nothing written) from
    records the store refuses in themselves (the others are written one by one; the refused ones are
    returned with their errors, for the caller to keep or set aside)."""
    try:
        await write(items)
        return WriteOutcome()
    except Exception as exc:  # noqa: BLE001 - classified below
        try:
            await ping()
        except Exception:  # noqa: BLE001
            return WriteOutcome(exc, store_down=True)
        out: WriteOutcome[T] = WriteOutcome(exc)
        for item in items:
            try:
                await write([item])
            except Exception as one:  # noqa: BLE001
                out.refused.append((item, one))
        return out


class BatchWriter:
    def __init__(self, name: str, write: WriteRows, journal: Journal, ping: Ping, *,
                 max_queue: int = 50_000, batch: int = 500, interval_s: float = 0.5) -> None:
        self.name = name
        self._write = write
        self._journal = journal
        self._ping = ping
        self._q: deque[dict[str, Any]] = deque()
        self._max = max_queue
        self._batch = batch
        self._interval = interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.spilled = 0
        self.dead_lettered = 0

    @property
    def depth(self) -> int:
        return len(self._q)

    def submit(self, row: dict[str, Any]) -> None:
        if len(self._q) >= self._max:
            self._spill([row], "queue full")
            return
        self._q.append(row)
        if len(self._q) >= self._batch:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"casemate-{self.name}-writer")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> bool:
        """Replay the journal, then write the queue; False when rows had to wait in the journal."""
        if self._journal.pending() and not await self._journal.replay(self._take, self._batch):
            self._spill_queue("store unavailable")          # keep order: newer rows queue up behind the journal
            return False
        while self._q:
            batch = [self._q.popleft() for _ in range(min(self._batch, len(self._q)))]
            if not await self._take(batch):
                self._spill(batch, "store unavailable")
                self._spill_queue("store unavailable")
                return False
        return True

    async def _take(self, rows: list[dict[str, Any]]) -> bool:
        """Write rows; False when the store is unavailable (the caller journals them)."""
        out = await write_sorting_out(rows, self._write, self._ping)
        if out.error is None:
            return True
        if out.store_down:
            log.warning("%s: store unavailable (%s); journaling %d rows", self.name, out.error.__class__.__name__,
                        len(rows))
            return False
        if len(out.refused) == len(rows) and len(rows) > 1:
            return False                                    # systemic (schema, permissions): keep them all
        for row, one in out.refused:
            self._journal.dead_letter(row, one)
            self.dead_lettered += 1
            log.error("%s: a row refused by the store (%s) went to the dead-letter file", self.name,
                      one.__class__.__name__)
        return True

    def _spill(self, rows: list[dict[str, Any]], why: str) -> None:
        if rows:
            self.spilled += self._journal.append(rows)
            log.debug("%s: %d rows journaled (%s)", self.name, len(rows), why)

    def _spill_queue(self, why: str) -> None:
        rows = list(self._q)
        self._q.clear()
        self._spill(rows, why)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if not await self.flush():
            log.warning("%s: the store did not take every row before shutdown; they wait in %s", self.name,
                        self._journal.path.name)
