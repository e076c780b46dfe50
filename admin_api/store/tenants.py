"""Tenants, users and memberships."""
from __future__ import annotations

from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Row
from admin_api.store.base import Page, StoreBase
from admin_api.store.codec import dt_value, json_value, utcnow
from admin_api.store.errors import NotFoundError, StoreError

TENANT_FIELDS = ("name", "status", "rpm", "tpm", "allowed_models", "allowed_providers", "policy_id", "settings")
USER_FIELDS = ("name", "role", "status", "password_hash")


def tenant_row(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "name": r["name"],
        "status": r["status"],
        "rpm": r["rpm"],
        "tpm": r["tpm"],
        "allowed_models": json_value(r["allowed_models"]),
        "allowed_providers": json_value(r["allowed_providers"]),
        "policy_id": r["policy_id"],
        "settings": json_value(r["settings"]) or {},
        "created_at": dt_value(r["created_at"]),
        "updated_at": dt_value(r["updated_at"]),
    }


def user_row(r: Row) -> dict[str, Any]:
    """A user without secrets (the password hash and MFA secret never leave the store this way)."""
    return {
        "id": r["id"],
        "tenant_id": r["tenant_id"],
        "email": r["email"],
        "name": r["name"],
        "role": r["role"],
        "status": r["status"],
        "mfa_enabled": r["mfa_secret_enc"] is not None,
        "last_login_at": dt_value(r["last_login_at"]),
        "created_at": dt_value(r["created_at"]),
        "updated_at": dt_value(r["updated_at"]),
    }


def _membership_row(r: Row) -> dict[str, Any]:
    return {
        "tenant_id": r["tenant_id"],
        "user_id": r["user_id"],
        "role": r["role"],
        "created_at": dt_value(r["created_at"]),
    }


class TenantsRepo(StoreBase):
    # ---- tenants -------------------------------------------------------------------------------

    async def create_tenant(self, name: str, **fields: Any) -> dict[str, Any]:
        """A new tenant; raises ConflictError when the name is taken."""
        unknown = set(fields) - set(TENANT_FIELDS)
        if unknown:
            raise TypeError(f"unknown tenant fields: {sorted(unknown)}")
        tid = new_id()
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO tenants (id, name, status, rpm, tpm, allowed_models, allowed_providers,"
                " policy_id, settings, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                tid, name, fields.get("status", "active"), fields.get("rpm"), fields.get("tpm"),
                fields.get("allowed_models"), fields.get("allowed_providers"), fields.get("policy_id"),
                fields.get("settings") or {}, now,
            )
            await self._change(conn, tid, "tenant", tid)
        return await self.get_tenant(tid)

    async def get_tenant(self, tenant_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
        if row is None:
            raise NotFoundError("tenant not found")
        return tenant_row(row)

    async def find_tenant_by_name(self, name: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow("SELECT * FROM tenants WHERE name = $1", name)
        return None if row is None else tenant_row(row)

    async def find_platform_tenant(self) -> dict[str, Any] | None:
        """The organization `casemate bootstrap` marked as the platform one, if any."""
        cond = ("(settings->>'platform') = 'true'" if self.dialect == "postgres"
                else "json_extract(settings, '$.platform') = 1")
        row = await self.db.fetchrow(f"SELECT * FROM tenants WHERE {cond} ORDER BY id LIMIT 1")
        return None if row is None else tenant_row(row)

    async def list_all_tenants(
        self, *, status: str | None = None, limit: int = 50, after: str | None = None
    ) -> Page[dict[str, Any]]:
        """Every tenant, newest first (platform administration only)."""
        where, args = (["status = $1"], [status]) if status else ([], [])
        rows, more, total = await self._page("tenants", where, args, limit=limit, after=after)
        items = [tenant_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)

    async def list_tenants_for_user(self, user_id: str) -> list[dict[str, Any]]:
        """Tenants the user is a member of, each with the user's role there."""
        rows = await self.db.fetch(
            "SELECT t.*, m.role AS member_role FROM tenants t JOIN memberships m ON m.tenant_id = t.id"
            " WHERE m.user_id = $1 ORDER BY t.id",
            user_id,
        )
        out = []
        for r in rows:
            t = tenant_row(r)
            t["role"] = r["member_role"]
            out.append(t)
        return out

    async def update_tenant(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        """Set the given fields (None clears a limit or restriction)."""
        unknown = set(fields) - set(TENANT_FIELDS)
        if unknown:
            raise TypeError(f"unknown tenant fields: {sorted(unknown)}")
        if fields:
            names = sorted(fields)
            sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
            async with self.db.transaction() as conn:
                count = await conn.execute(
                    f"UPDATE tenants SET {sets}, updated_at = ${len(names) + 2} WHERE id = $1",
                    tenant_id, *[fields[n] for n in names], utcnow(),
                )
                if count == 0:
                    raise NotFoundError("tenant not found")
                await self._change(conn, tenant_id, "tenant", tenant_id)
        return await self.get_tenant(tenant_id)

    async def delete_tenant(self, tenant_id: str) -> None:
        """Delete a tenant and everything it owns (keys disappear from the data plane too)."""
        async with self.db.transaction() as conn:
            key_ids = [r["id"] for r in await conn.fetch("SELECT id FROM api_keys WHERE tenant_id = $1", tenant_id)]
            count = await conn.execute("DELETE FROM tenants WHERE id = $1", tenant_id)
            if count == 0:
                raise NotFoundError("tenant not found")
            for kid in key_ids:
                await self._change(conn, tenant_id, "key", kid)
            await self._change(conn, tenant_id, "tenant", tenant_id)

    # ---- users ---------------------------------------------------------------------------------

    async def create_user(
        self, tenant_id: str, email: str, password_hash: str, role: str, *, name: str = "", status: str = "active"
    ) -> dict[str, Any]:
        """A user whose home is `tenant_id`, with a membership there; ConflictError on a taken email."""
        uid = new_id()
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO users (id, tenant_id, email, name, password_hash, role, status, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                uid, tenant_id, email.strip().lower(), name, password_hash, role, status, now,
            )
            await conn.execute(
                "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
                tenant_id, uid, role, now,
            )
        return await self.get_user(tenant_id, uid)

    async def get_user(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        """A member of `tenant_id` (home users and invited members alike), with their role there."""
        row = await self.db.fetchrow(
            "SELECT u.*, m.role AS member_role FROM users u JOIN memberships m ON m.user_id = u.id"
            " WHERE m.tenant_id = $1 AND u.id = $2",
            tenant_id, user_id,
        )
        if row is None:
            raise NotFoundError("user not found")
        user = user_row(row)
        user["role"] = row["member_role"]
        return user

    async def list_users(self, tenant_id: str, *, limit: int = 50, after: str | None = None) -> Page[dict[str, Any]]:
        """Members of the tenant, newest user first."""
        rows, more, total = await self._page(
            "users u JOIN memberships m ON m.user_id = u.id",
            ["m.tenant_id = $1"],
            [tenant_id],
            limit=limit,
            after=after,
            columns="u.*, m.role AS member_role",
            id_column="u.id",
        )
        items = []
        for r in rows:
            u = user_row(r)
            u["role"] = r["member_role"]
            items.append(u)
        return Page(items, more, total, items[-1]["id"] if more else None)

    async def find_login_candidates(self, email: str) -> list[dict[str, Any]]:
        """Users with this email across tenants, with password hash and MFA blob (login only)."""
        rows = await self.db.fetch("SELECT * FROM users WHERE email = $1 ORDER BY id", email.strip().lower())
        out = []
        for r in rows:
            u = user_row(r)
            u["password_hash"] = r["password_hash"]
            u["mfa_secret_enc"] = r["mfa_secret_enc"]
            out.append(u)
        return out

    async def update_user(self, tenant_id: str, user_id: str, **fields: Any) -> dict[str, Any]:
        """Change a home user's name, status or password hash; `role` changes the membership role."""
        unknown = set(fields) - set(USER_FIELDS)
        if unknown:
            raise TypeError(f"unknown user fields: {sorted(unknown)}")
        now = utcnow()
        async with self.db.transaction() as conn:
            member = await conn.fetchrow(
                "SELECT u.tenant_id AS home FROM users u JOIN memberships m ON m.user_id = u.id"
                " WHERE m.tenant_id = $1 AND u.id = $2",
                tenant_id, user_id,
            )
            if member is None:
                raise NotFoundError("user not found")
            own = {k: v for k, v in fields.items() if k != "role"}
            if own and member["home"] != tenant_id:
                raise StoreError("only the user's home tenant can change their profile")
            if "role" in fields:
                await conn.execute(
                    "UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2",
                    tenant_id, user_id, fields["role"],
                )
                if member["home"] == tenant_id:
                    own["role"] = fields["role"]
            if own:
                names = sorted(own)
                sets = ", ".join(f"{n} = ${i + 3}" for i, n in enumerate(names))
                await conn.execute(
                    f"UPDATE users SET {sets}, updated_at = ${len(names) + 3} WHERE tenant_id = $1 AND id = $2",
                    tenant_id, user_id, *[own[n] for n in names], now,
                )
        return await self.get_user(tenant_id, user_id)

    async def set_user_mfa_secret(self, tenant_id: str, user_id: str, secret: bytes | None) -> None:
        """Store (encrypted) or clear a user's TOTP secret."""
        blob = None if secret is None else self._mfa_box.seal(secret, f"{tenant_id}:{user_id}")
        async with self.db.transaction() as conn:
            count = await conn.execute(
                "UPDATE users SET mfa_secret_enc = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
                tenant_id, user_id, blob, utcnow(),
            )
        if count == 0:
            raise NotFoundError("user not found")

    def open_mfa_secret(self, tenant_id: str, user_id: str, blob: bytes) -> bytes:
        """Decrypt a blob returned by `find_login_candidates`."""
        return self._mfa_box.open(bytes(blob), f"{tenant_id}:{user_id}")

    async def touch_login(self, tenant_id: str, user_id: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE users SET last_login_at = $3 WHERE tenant_id = $1 AND id = $2", tenant_id, user_id, utcnow()
            )

    async def delete_user(self, tenant_id: str, user_id: str) -> None:
        """Delete a home user (with sessions and memberships everywhere)."""
        async with self.db.transaction() as conn:
            count = await conn.execute("DELETE FROM users WHERE tenant_id = $1 AND id = $2", tenant_id, user_id)
        if count == 0:
            raise NotFoundError("user not found")

    # ---- memberships ---------------------------------------------------------------------------

    async def add_member(self, tenant_id: str, user_id: str, role: str) -> dict[str, Any]:
        """Give an existing user a role in another tenant; ConflictError if already a member."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
                tenant_id, user_id, role, utcnow(),
            )
        return await self.get_membership(tenant_id, user_id)

    async def get_membership(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow(
            "SELECT * FROM memberships WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
        )
        if row is None:
            raise NotFoundError("membership not found")
        return _membership_row(row)

    async def remove_member(self, tenant_id: str, user_id: str) -> None:
        """Remove a user from a tenant (also ends their sessions in that tenant)."""
        async with self.db.transaction() as conn:
            count = await conn.execute(
                "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
            )
            if count == 0:
                raise NotFoundError("membership not found")
            await conn.execute(
                "UPDATE refresh_tokens SET revoked = TRUE, revoked_at = $3"
                " WHERE tenant_id = $1 AND user_id = $2 AND revoked = FALSE",
                tenant_id, user_id, utcnow(),
            )

    async def count_members_with_role(self, tenant_id: str, role: str) -> int:
        return int(await self.db.fetchval(
            "SELECT count(*) FROM memberships WHERE tenant_id = $1 AND role = $2", tenant_id, role
        ) or 0)
