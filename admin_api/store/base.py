"""Shared plumbing of the repository: the backend, secret boxes, paging, change rows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from admin_api.store.backend import Backend, Conn
from admin_api.store.codec import utcnow
from admin_api.store.crypto import MFA_SECRETS, PROVIDER_CREDENTIALS, SecretBox
from admin_api.store.errors import StoreError

T = TypeVar("T")

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, newest first; `next_after` is the id to continue after."""

    items: list[T]
    has_more: bool
    total_count: int
    next_after: str | None


class StoreBase:
    """State every repository part uses."""

    def __init__(self, db: Backend, master_key: bytes | None = None) -> None:
        self.db = db
        self._master = master_key
        self._boxes: dict[str, SecretBox] = {}

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def _box(self, purpose: str) -> SecretBox:
        box = self._boxes.get(purpose)
        if box is None:
            if self._master is None:
                raise StoreError("the store was opened without a master key; secrets cannot be sealed or read")
            box = self._boxes[purpose] = SecretBox(self._master, purpose)
        return box

    @property
    def _credentials_box(self) -> SecretBox:
        return self._box(PROVIDER_CREDENTIALS)

    @property
    def _mfa_box(self) -> SecretBox:
        return self._box(MFA_SECRETS)

    async def _change(self, conn: Conn, tenant_id: str | None, kind: str, entity_id: str) -> None:
        """Append to the change feed inside the caller's transaction.

        On PostgreSQL a transaction-scoped advisory lock makes change rows commit in
        sequence order, so a reader following `seq` never skips a late commit.
        """
        if self.db.dialect == "postgres":
            await conn.execute("SELECT pg_advisory_xact_lock(7420113)")
        await conn.execute(
            "INSERT INTO changes (tenant_id, kind, entity_id, ts) VALUES ($1, $2, $3, $4)",
            tenant_id, kind, entity_id, utcnow(),
        )

    async def _page(
        self,
        table: str,
        where: list[str],
        args: list[Any],
        *,
        limit: int,
        after: str | None,
        columns: str = "*",
        id_column: str = "id",
    ) -> tuple[list[Any], bool, int]:
        """Rows of `table` matching `where` (AND-ed, `$n` numbered from 1), newest id first."""
        limit = max(1, min(limit, MAX_PAGE))
        cond = " AND ".join(where) if where else "TRUE"
        total = await self.db.fetchval(f"SELECT count(*) FROM {table} WHERE {cond}", *args)
        page_args = list(args)
        page_cond = cond
        if after is not None:
            page_args.append(after)
            page_cond += f" AND {id_column} < ${len(page_args)}"
        page_args.append(limit + 1)
        rows = await self.db.fetch(
            f"SELECT {columns} FROM {table} WHERE {page_cond} ORDER BY {id_column} DESC LIMIT ${len(page_args)}",
            *page_args,
        )
        has_more = len(rows) > limit
        return list(rows[:limit]), has_more, int(total or 0)
