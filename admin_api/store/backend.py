"""The small driver surface the repository is written against.

SQL is written once, in PostgreSQL placeholder style (`$1, $2, ...`); the SQLite
backend rewrites placeholders to SQLite's numbered form (`?1, ?2, ...`) once
per distinct statement. JSON values are passed as Python objects and come back
either decoded (PostgreSQL jsonb codec) or as text (SQLite); the repository's
decoders accept both, as they do for timestamps and booleans.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

Row = Mapping[str, Any]
Dialect = Literal["sqlite", "postgres"]


class Conn(Protocol):
    """One connection (inside a transaction for writes)."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; returns the number of rows it changed."""

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """All rows of a query."""

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """The first row of a query, or None."""

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or None."""


class Backend(Conn, Protocol):
    """A database: reads on the backend itself, writes inside `transaction()`."""

    dialect: Dialect

    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        """A write transaction; commits on success, rolls back on error."""

    async def ping(self) -> None:
        """Round-trip to the database; raises StoreUnavailable when down."""

    async def close(self) -> None:
        """Release connections."""
