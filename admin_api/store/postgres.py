"""PostgreSQL backend (asyncpg pool).

jsonb columns are encoded and decoded with orjson by a per-connection codec.
A `schema` (from `?schema=` in the URL) sets the connections' search_path, so
test runs and deployments can share one database without colliding.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson

from admin_api.store.backend import Dialect, Row
from admin_api.store.errors import ConflictError, NotFoundError, StoreUnavailable

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _count(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def split_schema(url: str) -> tuple[str, str | None]:
    """Remove a `schema=` query parameter from a PostgreSQL URL and return it separately."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name: {schema!r}")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


_KEYS = (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError)


def _translate(exc: asyncpg.UniqueViolationError | asyncpg.ForeignKeyViolationError) -> Exception:
    """The store's error for a key the database refused."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return ConflictError(exc.detail or str(exc))
    return NotFoundError("a referenced row does not exist")


class _PgConn:
    """Statement helpers over one pool connection (or the pool itself)."""

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            return _count(await self._conn.execute(sql, *args))
        except _KEYS as exc:
            raise _translate(exc) from exc

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(sql, rows)
        except _KEYS as exc:
            raise _translate(exc) from exc

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            return list(await self._conn.fetch(sql, *args))
        except _KEYS as exc:
            raise _translate(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        try:
            return await self._conn.fetchrow(sql, *args)
        except _KEYS as exc:
            raise _translate(exc) from exc

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetchval(sql, *args)


class PostgresBackend(_PgConn):
    """A PostgreSQL database reached through an asyncpg pool."""

    dialect: Dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool, schema: str | None) -> None:
        super().__init__(pool)
        self.pool = pool
        self.schema = schema

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresBackend:
        dsn, schema = split_schema(url)
        settings = {"search_path": schema} if schema else None
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, init=_init_connection, server_settings=settings
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        return cls(pool, schema)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PgConn]:
        """A transaction on one pool connection; commits on success, rolls back on any exception.

        Cancellation is asyncpg's to handle, and it does: a cancelled statement is cancelled on the
        server, the transaction context rolls back, and the pool resets a connection that is still
        in a transaction (ROLLBACK) or terminates it before reuse. A COMMIT refused by a deferred
        constraint raises the same errors as a refused statement.
        """
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield _PgConn(conn)
        except _KEYS as exc:   # a deferred constraint checked at COMMIT (statements' errors are translated)
            raise _translate(exc) from exc

    async def ping(self) -> None:
        try:
            await self.pool.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        await self.pool.close()
