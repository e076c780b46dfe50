"""SQLite backend (aiosqlite): WAL, busy_timeout, foreign keys on.

Writes are serialised through one connection guarded by an asyncio lock and
run as `BEGIN IMMEDIATE` transactions; reads outside a transaction use a
second connection, which WAL lets proceed while a write is in progress.
"""
from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

from admin_api.store.backend import Dialect, Row
from admin_api.store.errors import ConflictError, NotFoundError, StoreUnavailable

T = TypeVar("T")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_translated: dict[str, str] = {}


def _sql(sql: str) -> str:
    """`$1` placeholders -> `?1` (cached per distinct statement)."""
    out = _translated.get(sql)
    if out is None:
        out = _translated[sql] = _PLACEHOLDER.sub(r"?\1", sql)
    return out


def _param(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, (dict, list, tuple)):
        return orjson.dumps(value).decode()
    return value


_PLAIN = frozenset({str, int, float, bytes, bool, type(None)})


def _params(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(a if type(a) in _PLAIN else _param(a) for a in args)


def _translate_error(exc: sqlite3.IntegrityError) -> Exception:
    text = str(exc)
    if "UNIQUE" in text:
        return ConflictError(text)
    if "FOREIGN KEY" in text:
        return NotFoundError("a referenced row does not exist")
    return exc


async def _to_the_end(aw: Awaitable[T]) -> T:
    """Await `aw` to completion even if the calling task is cancelled meanwhile; then re-raise that cancellation."""
    task = asyncio.ensure_future(aw)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


class _SqliteConn:
    """Statement helpers over one aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            cur = await self._db.execute(_sql(sql), _params(args))
        except sqlite3.IntegrityError as exc:
            raise _translate_error(exc) from exc
        count = cur.rowcount
        await cur.close()
        return max(count, 0)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self._db.executemany(_sql(sql), [_params(r) for r in rows])
        except sqlite3.IntegrityError as exc:
            raise _translate_error(exc) from exc

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:   # one call on the connection's thread: no half-read statement stays open across an await
            rows = await self._db.execute_fetchall(_sql(sql), _params(args))
        except sqlite3.IntegrityError as exc:
            raise _translate_error(exc) from exc
        return list(rows)  # type: ignore[arg-type]  # sqlite3.Row reads like a Mapping

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self.fetch(sql, *args)
        return None if not rows else next(iter(rows[0]))  # type: ignore[call-overload]


async def _connect(path: str) -> aiosqlite.Connection:
    try:
        db = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open SQLite database at {path}: {exc}") from exc
    db.row_factory = sqlite3.Row
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA busy_timeout=5000")
    await db.execute("PRAGMA foreign_keys=ON")
    await db.execute("PRAGMA synchronous=NORMAL")
    return db


class SqliteBackend(_SqliteConn):
    """A SQLite database file: one writer connection, one reader connection."""

    dialect: Dialect = "sqlite"

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, path: str) -> None:
        super().__init__(reader)
        self.path = path
        self._writer = writer
        self._write = _SqliteConn(writer)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteBackend:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path)
        reader = await _connect(path)
        return cls(writer, reader, path)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteConn]:
        """`BEGIN IMMEDIATE` ... `COMMIT` on the writer, one task at a time.

        On any exception (a cancellation included, wherever it lands: during BEGIN, in the body,
        during a statement or during COMMIT) the writer is rolled back before the lock is released,
        and that cleanup is not cut short by further cancellations. A COMMIT SQLite refuses (a
        deferred foreign key, say) is rolled back too. A cancellation that arrives while COMMIT is
        already running cannot undo it: the caller then sees CancelledError for committed work.
        """
        async with self._lock:
            if self._writer.in_transaction:   # last resort: an earlier cleanup failed; never nest
                await self._rollback(interrupt=False)
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                yield self._write
                await self._write.execute("COMMIT")
            except BaseException as exc:
                await _to_the_end(self._rollback(interrupt=isinstance(exc, asyncio.CancelledError)))
                raise

    async def _rollback(self, *, interrupt: bool) -> None:
        """Leave the writer outside any transaction, whatever was in flight on it.

        aiosqlite runs one connection's calls in order on one thread, so a ROLLBACK queued now runs
        after a BEGIN or statement still in flight from a cancelled await. `interrupt` first aborts
        that statement, so a cancelled slow query is not waited out.
        """
        if interrupt:
            await self._writer.interrupt()
        try:
            await self._writer.execute("ROLLBACK")
        except sqlite3.OperationalError:   # no transaction was open: BEGIN failed, or SQLite already rolled back
            if self._writer.in_transaction:
                raise

    async def ping(self) -> None:
        try:
            await self.fetchval("SELECT 1")
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        await self._db.close()
        await self._writer.close()
