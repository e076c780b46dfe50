"""Policies and their immutable versions (rollback writes a new version)."""
from __future__ import annotations

from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Conn, Row
from admin_api.store.base import Page, StoreBase
from admin_api.store.codec import dt_value, json_value, utcnow
from admin_api.store.errors import NotFoundError
from pipeline.directory import PolicyRecord

_CURRENT = (
    "SELECT p.*, v.document AS document FROM policies p"
    " JOIN policy_versions v ON v.policy_id = p.id AND v.version = p.current_version"
)


def policy_row(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "tenant_id": r["tenant_id"],
        "name": r["name"],
        "description": r["description"],
        "version": r["current_version"],
        "document": json_value(r["document"]),
        "created_by": r["created_by"],
        "created_at": dt_value(r["created_at"]),
        "updated_at": dt_value(r["updated_at"]),
    }


def policy_record(r: Row) -> PolicyRecord:
    return PolicyRecord(
        id=r["id"], tenant_id=r["tenant_id"], name=r["name"], version=r["current_version"],
        document=json_value(r["document"]),
    )


def _version_row(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "policy_id": r["policy_id"],
        "version": r["version"],
        "document": json_value(r["document"]),
        "comment": r["comment"],
        "created_by": r["created_by"],
        "created_at": dt_value(r["created_at"]),
    }


class PoliciesRepo(StoreBase):
    async def create_policy(
        self, tenant_id: str, name: str, document: dict[str, Any], *, description: str = "",
        created_by: str | None = None,
    ) -> dict[str, Any]:
        """A policy with version 1; ConflictError if the tenant already has this name."""
        pid = new_id()
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO policies (id, tenant_id, name, description, current_version, created_by,"
                " created_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $6, $6)",
                pid, tenant_id, name, description, created_by, now,
            )
            await self._add_version(conn, tenant_id, pid, 1, document, "created", created_by)
            await self._change(conn, tenant_id, "policy", pid)
        return await self.get_policy(tenant_id, pid)

    async def _add_version(
        self, conn: Conn, tenant_id: str, pid: str, version: int, document: dict[str, Any], comment: str,
        created_by: str | None,
    ) -> None:
        await conn.execute(
            "INSERT INTO policy_versions (id, tenant_id, policy_id, version, document, comment, created_by,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            new_id(), tenant_id, pid, version, document, comment, created_by, utcnow(),
        )

    async def get_policy(self, tenant_id: str, policy_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow(_CURRENT + " WHERE p.tenant_id = $1 AND p.id = $2", tenant_id, policy_id)
        if row is None:
            raise NotFoundError("policy not found")
        return policy_row(row)

    async def list_policies(
        self, tenant_id: str, *, limit: int = 50, after: str | None = None
    ) -> Page[dict[str, Any]]:
        rows, more, total = await self._page(
            "policies p JOIN policy_versions v ON v.policy_id = p.id AND v.version = p.current_version",
            ["p.tenant_id = $1"], [tenant_id], limit=limit, after=after,
            columns="p.*, v.document AS document", id_column="p.id",
        )
        items = [policy_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)

    async def update_policy(
        self, tenant_id: str, policy_id: str, *, document: dict[str, Any] | None = None,
        name: str | None = None, description: str | None = None, comment: str = "",
        updated_by: str | None = None,
    ) -> dict[str, Any]:
        """Rename/describe, and with a document, write the next version and make it current."""
        async with self.db.transaction() as conn:
            current = await conn.fetchval(
                "SELECT current_version FROM policies WHERE tenant_id = $1 AND id = $2", tenant_id, policy_id
            )
            if current is None:
                raise NotFoundError("policy not found")
            version = int(current)
            if document is not None:
                version = await self._next_version(conn, policy_id)
                await self._add_version(conn, tenant_id, policy_id, version, document, comment or "updated",
                                        updated_by)
            await conn.execute(
                "UPDATE policies SET current_version = $3, name = coalesce($4, name),"
                " description = coalesce($5, description), updated_at = $6 WHERE tenant_id = $1 AND id = $2",
                tenant_id, policy_id, version, name, description, utcnow(),
            )
            await self._change(conn, tenant_id, "policy", policy_id)
        return await self.get_policy(tenant_id, policy_id)

    async def _next_version(self, conn: Conn, policy_id: str) -> int:
        top = await conn.fetchval("SELECT max(version) FROM policy_versions WHERE policy_id = $1", policy_id)
        return int(top or 0) + 1

    async def list_policy_versions(self, tenant_id: str, policy_id: str) -> list[dict[str, Any]]:
        """Every version, newest first (NotFoundError for an unknown or foreign policy)."""
        rows = await self.db.fetch(
            "SELECT * FROM policy_versions WHERE tenant_id = $1 AND policy_id = $2 ORDER BY version DESC",
            tenant_id, policy_id,
        )
        if not rows:
            raise NotFoundError("policy not found")
        return [_version_row(r) for r in rows]

    async def rollback_policy(
        self, tenant_id: str, policy_id: str, version: int, *, updated_by: str | None = None
    ) -> dict[str, Any]:
        """Make a copy of an earlier version the new current version."""
        async with self.db.transaction() as conn:
            doc = await conn.fetchval(
                "SELECT document FROM policy_versions WHERE tenant_id = $1 AND policy_id = $2 AND version = $3",
                tenant_id, policy_id, version,
            )
            if doc is None:
                raise NotFoundError("policy version not found")
            new_version = await self._next_version(conn, policy_id)
            await self._add_version(conn, tenant_id, policy_id, new_version, json_value(doc),
                                    f"rollback to version {version}", updated_by)
            await conn.execute(
                "UPDATE policies SET current_version = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
                tenant_id, policy_id, new_version, utcnow(),
            )
            await self._change(conn, tenant_id, "policy", policy_id)
        return await self.get_policy(tenant_id, policy_id)

    async def delete_policy(self, tenant_id: str, policy_id: str) -> None:
        """Delete a policy; tenants and keys that used it fall back to the platform policy."""
        async with self.db.transaction() as conn:
            keys = await conn.fetch(
                "SELECT id FROM api_keys WHERE tenant_id = $1 AND policy_id = $2", tenant_id, policy_id
            )
            count = await conn.execute("DELETE FROM policies WHERE tenant_id = $1 AND id = $2", tenant_id, policy_id)
            if count == 0:
                raise NotFoundError("policy not found")
            cleared = await conn.execute(
                "UPDATE tenants SET policy_id = NULL WHERE id = $1 AND policy_id = $2", tenant_id, policy_id
            )
            if cleared:
                await self._change(conn, tenant_id, "tenant", tenant_id)
            for k in keys:
                await self._change(conn, tenant_id, "key", k["id"])
            await self._change(conn, tenant_id, "policy", policy_id)
