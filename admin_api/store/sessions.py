"""Refresh tokens: rotation with reuse detection (a replayed token revokes its whole family)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from admin_api.ids import new_id
from admin_api.store.backend import Conn, Row
from admin_api.store.base import StoreBase
from admin_api.store.codec import dt_value, utcnow

RotationOutcome = Literal["rotated", "reused", "invalid"]


@dataclass(frozen=True, slots=True)
class Rotation:
    """What happened to a presented refresh token."""

    outcome: RotationOutcome
    tenant_id: str | None = None
    user_id: str | None = None
    family_id: str | None = None


def session_row(r: Row) -> dict[str, Any]:
    return {
        "id": r["family_id"],
        "user_id": r["user_id"],
        "user_agent": r["user_agent"],
        "created_at": dt_value(r["created_at"]),
        "expires_at": dt_value(r["expires_at"]),
    }


class SessionsRepo(StoreBase):
    async def create_refresh_token(
        self, tenant_id: str, user_id: str, token_hash: str, expires_at: datetime, *,
        family_id: str | None = None, user_agent: str = "",
    ) -> str:
        """Store a new refresh token (a new family unless one is given); returns the family id."""
        family = family_id or new_id()
        async with self.db.transaction() as conn:
            await self._insert(conn, tenant_id, user_id, family, token_hash, expires_at, user_agent)
        return family

    async def _insert(
        self, conn: Conn, tenant_id: str, user_id: str, family: str, token_hash: str, expires_at: datetime,
        user_agent: str,
    ) -> str:
        tid = new_id()
        await conn.execute(
            "INSERT INTO refresh_tokens (id, tenant_id, user_id, family_id, token_hash, user_agent, created_at,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            tid, tenant_id, user_id, family, token_hash, user_agent[:200], utcnow(), expires_at,
        )
        return tid

    async def rotate_refresh_token(self, token_hash: str, new_hash: str, new_expires_at: datetime) -> Rotation:
        """Exchange a refresh token for a new one in the same family.

        A token that was already exchanged (or revoked) is a replay: the whole family is revoked and
        the outcome is "reused". Unknown or expired tokens are "invalid".
        """
        now = utcnow()
        async with self.db.transaction() as conn:
            row = await conn.fetchrow("SELECT * FROM refresh_tokens WHERE token_hash = $1", token_hash)
            if row is None:
                return Rotation("invalid")
            tenant_id, user_id, family = row["tenant_id"], row["user_id"], row["family_id"]
            if row["revoked"]:
                await self._revoke_family(conn, tenant_id, family, now)
                return Rotation("reused", tenant_id, user_id, family)
            expires_at = dt_value(row["expires_at"])
            if expires_at is not None and expires_at <= now:
                return Rotation("invalid", tenant_id, user_id, family)
            new_id_ = await self._insert(conn, tenant_id, user_id, family, new_hash, new_expires_at,
                                         row["user_agent"])
            claimed = await conn.execute(
                "UPDATE refresh_tokens SET revoked = TRUE, revoked_at = $2, replaced_by = $3"
                " WHERE id = $1 AND revoked = FALSE",
                row["id"], now, new_id_,
            )
            if claimed == 0:     # a concurrent exchange won: treat as reuse
                await self._revoke_family(conn, tenant_id, family, now)
                return Rotation("reused", tenant_id, user_id, family)
        return Rotation("rotated", tenant_id, user_id, family)

    async def _revoke_family(self, conn: Conn, tenant_id: str, family: str, now: datetime) -> int:
        return await conn.execute(
            "UPDATE refresh_tokens SET revoked = TRUE, revoked_at = $3"
            " WHERE tenant_id = $1 AND family_id = $2 AND revoked = FALSE",
            tenant_id, family, now,
        )

    async def revoke_session(self, tenant_id: str, user_id: str, family_id: str) -> int:
        """Revoke one session (token family) of a user; returns tokens revoked."""
        async with self.db.transaction() as conn:
            return await conn.execute(
                "UPDATE refresh_tokens SET revoked = TRUE, revoked_at = $4"
                " WHERE tenant_id = $1 AND user_id = $2 AND family_id = $3 AND revoked = FALSE",
                tenant_id, user_id, family_id, utcnow(),
            )

    async def revoke_user_sessions(self, tenant_id: str, user_id: str) -> int:
        """Revoke every refresh token of the user in this tenant (logout everywhere)."""
        async with self.db.transaction() as conn:
            return await conn.execute(
                "UPDATE refresh_tokens SET revoked = TRUE, revoked_at = $3"
                " WHERE tenant_id = $1 AND user_id = $2 AND revoked = FALSE",
                tenant_id, user_id, utcnow(),
            )

    async def list_sessions(self, tenant_id: str, user_id: str) -> list[dict[str, Any]]:
        """Live sessions: one per family with an unrevoked, unexpired token."""
        rows = await self.db.fetch(
            "SELECT * FROM refresh_tokens WHERE tenant_id = $1 AND user_id = $2 AND revoked = FALSE"
            " AND expires_at > $3 ORDER BY id DESC",
            tenant_id, user_id, utcnow(),
        )
        return [session_row(r) for r in rows]
