"""SCIM provisioning data: per-tenant bearer tokens, SCIM attributes of users, groups.

SCIM users are the control plane's own users (home tenant = the token's tenant); `scim_users`
keeps what SCIM carries beyond the `users` row (externalId, name parts, extra emails, ...).
Groups keep their members as a list of user ids of the same tenant.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Row
from admin_api.store.base import StoreBase
from admin_api.store.codec import dt_value, json_value, utcnow
from admin_api.store.errors import NotFoundError
from admin_api.store.tenants import user_row


def scim_token_row(r: Row) -> dict[str, Any]:
    return {"id": r["id"], "tenant_id": r["tenant_id"], "name": r["name"], "created_by": r["created_by"],
            "created_at": dt_value(r["created_at"]), "last_used_at": dt_value(r["last_used_at"])}


def _scim_user(r: Row) -> dict[str, Any]:
    user = user_row(r)
    user["external_id"] = r["external_id"]
    user["attributes"] = json_value(r["attributes"]) or {}
    user["version"] = r["version"] or 1
    return user


def group_row(r: Row) -> dict[str, Any]:
    return {"id": r["id"], "tenant_id": r["tenant_id"], "display_name": r["display_name"],
            "external_id": r["external_id"], "members": list(json_value(r["members"]) or []),
            "version": r["version"], "created_at": dt_value(r["created_at"]), "updated_at": dt_value(r["updated_at"])}


_USER_SELECT = ("SELECT u.*, s.external_id AS external_id, s.attributes AS attributes, s.version AS version"
                " FROM users u LEFT JOIN scim_users s ON s.user_id = u.id")


class ScimRepo(StoreBase):
    # ---- tokens ---------------------------------------------------------------------------------

    async def create_scim_token(self, tenant_id: str, *, name: str, token_hash: str,
                                created_by: str | None) -> dict[str, Any]:
        tid = new_id()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO scim_tokens (id, tenant_id, token_hash, name, created_by, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)", tid, tenant_id, token_hash, name, created_by, utcnow())
        row = await self.db.fetchrow("SELECT * FROM scim_tokens WHERE id = $1", tid)
        assert row is not None
        return scim_token_row(row)

    async def list_scim_tokens(self, tenant_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch("SELECT * FROM scim_tokens WHERE tenant_id = $1 ORDER BY id DESC", tenant_id)
        return [scim_token_row(r) for r in rows]

    async def delete_scim_token(self, tenant_id: str, token_id: str) -> None:
        async with self.db.transaction() as conn:
            n = await conn.execute("DELETE FROM scim_tokens WHERE tenant_id = $1 AND id = $2", tenant_id, token_id)
        if n == 0:
            raise NotFoundError("SCIM token not found")

    async def scim_token_tenant(self, token_hash: str) -> tuple[str, str] | None:
        """(tenant id, token id) of a SCIM token whose organization is active (marked used), or None."""
        row = await self.db.fetchrow(
            "SELECT t.id, t.tenant_id FROM scim_tokens t JOIN tenants n ON n.id = t.tenant_id"
            " WHERE t.token_hash = $1 AND n.status = 'active'", token_hash)
        if row is None:
            return None
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE scim_tokens SET last_used_at = $2 WHERE id = $1", row["id"], utcnow())
        return str(row["tenant_id"]), str(row["id"])

    # ---- users ----------------------------------------------------------------------------------

    async def scim_users(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every home user of the tenant with SCIM attributes, oldest first."""
        rows = await self.db.fetch(f"{_USER_SELECT} WHERE u.tenant_id = $1 ORDER BY u.id", tenant_id)
        return [_scim_user(r) for r in rows]

    async def scim_user(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow(f"{_USER_SELECT} WHERE u.tenant_id = $1 AND u.id = $2", tenant_id, user_id)
        if row is None:
            raise NotFoundError("user not found")
        return _scim_user(row)

    async def set_scim_attributes(self, tenant_id: str, user_id: str, *, external_id: str | None,
                                  attributes: dict[str, Any]) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO scim_users (user_id, tenant_id, external_id, attributes, version) VALUES ($1, $2, $3, $4, 1)"
                " ON CONFLICT (user_id) DO UPDATE SET external_id = $3, attributes = $4,"
                " version = scim_users.version + 1", user_id, tenant_id, external_id, attributes)

    async def active_key_ids_created_by(self, tenant_id: str, actor: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT id FROM api_keys WHERE tenant_id = $1 AND created_by = $2 AND status = 'active'",
            tenant_id, actor)
        return [r["id"] for r in rows]

    # ---- groups ---------------------------------------------------------------------------------

    async def scim_groups(self, tenant_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch("SELECT * FROM scim_groups WHERE tenant_id = $1 ORDER BY id", tenant_id)
        return [group_row(r) for r in rows]

    async def scim_group(self, tenant_id: str, group_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow("SELECT * FROM scim_groups WHERE tenant_id = $1 AND id = $2", tenant_id, group_id)
        if row is None:
            raise NotFoundError("group not found")
        return group_row(row)

    async def _home_user_ids(self, tenant_id: str, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        found: set[str] = set()
        for start in range(0, len(ids), 100):
            chunk = ids[start:start + 100]
            marks = ", ".join(f"${i + 2}" for i in range(len(chunk)))
            rows = await self.db.fetch(f"SELECT id FROM users WHERE tenant_id = $1 AND id IN ({marks})",
                                       tenant_id, *chunk)
            found.update(r["id"] for r in rows)
        return found

    async def save_scim_group(self, tenant_id: str, group_id: str | None, *, display_name: str,
                              external_id: str | None, members: list[dict[str, Any]]) -> dict[str, Any]:
        """Create (group_id None) or replace a group.

        `members`: objects with `value` (a user id of the tenant, else NotFoundError) and optional
        `type` / `display`, kept as given; a repeated value keeps its first entry.
        """
        by_value: dict[str, dict[str, Any]] = {}
        for m in members:
            by_value.setdefault(str(m["value"]), m)
        unique = list(by_value.values())
        known = await self._home_user_ids(tenant_id, list(by_value))
        if len(known) != len(by_value):
            raise NotFoundError("a member is not a user of this organization")
        now: datetime = utcnow()
        async with self.db.transaction() as conn:
            if group_id is None:
                group_id = new_id()
                await conn.execute(
                    "INSERT INTO scim_groups (id, tenant_id, display_name, external_id, members, version, created_at,"
                    " updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
                    group_id, tenant_id, display_name, external_id, unique, now)
            else:
                n = await conn.execute(
                    "UPDATE scim_groups SET display_name = $3, external_id = $4, members = $5, version = version + 1,"
                    " updated_at = $6 WHERE tenant_id = $1 AND id = $2",
                    tenant_id, group_id, display_name, external_id, unique, now)
                if n == 0:
                    raise NotFoundError("group not found")
        return await self.scim_group(tenant_id, group_id)

    async def delete_scim_group(self, tenant_id: str, group_id: str) -> None:
        async with self.db.transaction() as conn:
            n = await conn.execute("DELETE FROM scim_groups WHERE tenant_id = $1 AND id = $2", tenant_id, group_id)
        if n == 0:
            raise NotFoundError("group not found")

    async def drop_group_member(self, tenant_id: str, user_id: str) -> None:
        """Remove a deleted user from every group of the tenant."""
        for group in await self.scim_groups(tenant_id):
            if any(m["value"] == user_id for m in group["members"]):
                await self.save_scim_group(tenant_id, group["id"], display_name=group["display_name"],
                                           external_id=group["external_id"],
                                           members=[m for m in group["members"] if m["value"] != user_id])

    async def rename_scim_user(self, tenant_id: str, user_id: str, email: str) -> None:
        """Change a home user's sign-in address (SCIM userName); ConflictError when taken."""
        async with self.db.transaction() as conn:
            n = await conn.execute("UPDATE users SET email = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
                                   tenant_id, user_id, email.strip().lower(), utcnow())
        if n == 0:
            raise NotFoundError("user not found")
