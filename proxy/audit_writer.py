"""Audit writer: a bounded in-memory queue drained in batches to the store.

Nothing is lost: when the queue is full or the store fails, events are appended
to a local JSON Lines journal (flushed and fsync'ed per batch) and replayed in
order once the store answers again. Queue depth, journal size and spills are
metrics. Token usage for the rate limiter is aggregated here, off the hot path.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol, Sequence

from proxy.batch_writer import write_sorting_out
from proxy.journal import Journal

log = logging.getLogger("casemate.audit")


class AuditStore(Protocol):
    async def write_audit_events(self, events: list[dict[str, Any]]) -> None: ...
    async def write_gateway_requests(self, rows: list[dict[str, Any]]) -> None: ...
    async def record_key_usage(self, rows: list[tuple[str, float, int, int, float]]) -> None: ...


TokenSink = Callable[[Sequence[str], int], Awaitable[None]]


def _key_usage(rows: list[dict[str, Any]]) -> list[tuple[str, float, int, int, float]]:
    """Per-key increments (key_id, last_used_at, requests, tokens, cost) for the batch."""
    acc: dict[str, list[Any]] = {}
    for r in rows:
        kid = r.get("key_id")
        if not kid:
            continue
        tokens = int(r.get("prompt_tokens") or 0) + int(r.get("completion_tokens") or 0)
        cur = acc.get(kid)
        if cur is None:
            acc[kid] = [r.get("ts") or 0.0, 1, tokens, float(r.get("cost_usd") or 0.0)]
        else:
            cur[0] = max(cur[0], r.get("ts") or 0.0)
            cur[1] += 1
            cur[2] += tokens
            cur[3] += float(r.get("cost_usd") or 0.0)
    return [(kid, v[0], v[1], v[2], v[3]) for kid, v in acc.items()]


class AuditWriter:
    def __init__(self, store: AuditStore, journal_dir: Path, *, max_queue: int = 10_000, batch_size: int = 500,
                 flush_interval_s: float = 0.5, token_sink: TokenSink | None = None,
                 metrics: Any = None, on_written: Callable[[], Awaitable[None]] | None = None,
                 worker: int = 0, workers: int = 1) -> None:
        self._store = store
        self._journal = Journal(Path(journal_dir), "audit", worker=worker, workers=workers)
        self._q: deque[tuple[dict[str, Any] | None, dict[str, Any]]] = deque()
        self._max = max_queue
        self._batch = batch_size
        self._interval = flush_interval_s
        self._tokens: dict[tuple[str, ...], int] = {}
        self._token_sink = token_sink
        self._metrics = metrics
        self._on_written = on_written        # e.g. a Redis publish that wakes the event dispatcher
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.spilled = 0
        self.written = 0
        self.dead_lettered = 0

    # -- hot path --------------------------------------------------------------------------
    def submit(self, event: dict[str, Any] | None, row: dict[str, Any], usage: tuple[tuple[str, ...], int]) -> None:
        keys, tokens = usage
        if tokens and keys:
            self._tokens[keys] = self._tokens.get(keys, 0) + tokens
        if len(self._q) >= self._max:
            self._spill([(event, row)], reason="queue_full")
            return
        self._q.append((event, row))
        if len(self._q) >= self._batch:
            self._wake.set()

    @property
    def depth(self) -> int:
        return len(self._q)

    @property
    def journal_bytes(self) -> int:
        return self._journal.size_bytes

    # -- background ------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="casemate-audit-writer")

    async def _run(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued (and replay the journal first when it has entries)."""
        await self._flush_tokens()
        if self._journal.pending():
            if not await self._replay():
                # store still down: keep order by spilling the queue behind the journal
                if self._q:
                    batch = list(self._q)
                    self._q.clear()
                    self._spill(batch, reason="store_down")
                return
        while self._q:
            n = min(self._batch, len(self._q))
            batch = [self._q.popleft() for _ in range(n)]
            if not await self._write(batch, fresh=True):
                rest = batch + list(self._q)
                self._q.clear()
                self._spill(rest, reason="store_down")
                return
        if self._metrics is not None:
            self._metrics.audit_depth(len(self._q), self.journal_bytes)

    async def _flush_tokens(self) -> None:
        if not self._tokens or self._token_sink is None:
            self._tokens.clear()
            return
        pending, self._tokens = self._tokens, {}
        for keys, n in pending.items():
            try:
                await self._token_sink(keys, n)
            except Exception:  # noqa: BLE001 - accounting is best effort
                log.warning("token accounting failed")

    async def _write_batch(self, batch: list[tuple[dict[str, Any] | None, dict[str, Any]]],
                           fresh: bool = False) -> None:
        events = [e for e, _ in batch if e]
        if events:
            await self._store.write_audit_events(events, fresh=fresh)
        rows = [r for _, r in batch if r]
        if rows:
            await self._store.write_gateway_requests(rows)

    async def _write(self, batch: list[tuple[dict[str, Any] | None, dict[str, Any]]], fresh: bool = False) -> bool:
        """Write a batch (`fresh`: straight from the queue, first attempt); False when it must be spilled."""
        # Only the first, whole-batch attempt may skip the look-up of stored ids; retries one by one may not.
        # When the store answers but every record fails alone, the problem is systemic (schema, permissions):
        # keep them all in the journal. Otherwise the failing records are bad in themselves: set them aside
        # (dead-letter file + metric) so they never block the journal, and keep the good ones.
        out = await write_sorting_out(batch, lambda items: self._write_batch(items, fresh and items is batch),
                                      self._store.ping)
        if out.error is not None:
            if out.store_down or len(out.refused) == len(batch):
                log.warning("audit store %s (%s); spilling %d events to the journal",
                            "unavailable" if out.store_down else "refuses every record",
                            out.error.__class__.__name__, len(batch))
                return False
            for item, one_exc in out.refused:
                self._dead_letter(item, one_exc)
        self.written += len(batch)
        if self._on_written is not None and any(e for e, _ in batch):
            try:
                await self._on_written()
            except Exception:  # noqa: BLE001 - the dispatcher polls anyway
                pass
        usage = _key_usage([r for _, r in batch if r])
        if usage:
            try:          # counters are best effort: a failure here must not replay (and double) the batch
                await self._store.record_key_usage(usage)
            except Exception as exc:  # noqa: BLE001
                log.warning("key usage update failed (%s)", exc.__class__.__name__)
        return True

    def _dead_letter(self, item: tuple[dict[str, Any] | None, dict[str, Any]], exc: Exception) -> None:
        self._journal.dead_letter({"event": item[0], "row": item[1]}, exc)
        self.dead_lettered += 1
        log.error("audit record refused by the store (%s); kept in the dead-letter file", exc.__class__.__name__)
        if self._metrics is not None:
            self._metrics.audit_spilled(1, "dead_letter")

    def _spill(self, batch: list[tuple[dict[str, Any] | None, dict[str, Any]]], reason: str) -> None:
        self._journal.append({"event": event, "row": row} for event, row in batch)
        self.spilled += len(batch)
        if self._metrics is not None:
            self._metrics.audit_spilled(len(batch), reason)

    async def _replay(self) -> bool:
        """Replay the journal in order (inserts are idempotent on id, so a partial replay may repeat)."""
        async def write(entries: list[Any]) -> bool:
            return await self._write([(e.get("event"), e.get("row") or {}) for e in entries])

        return await self._journal.replay(write, self._batch)

    async def close(self) -> None:
        """Stop the loop and flush everything (used on graceful shutdown)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
