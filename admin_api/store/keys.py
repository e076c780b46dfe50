"""API keys: stored as a keyed hash, listed masked, revoked rows kept for audit."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Row
from admin_api.store.base import Page, StoreBase
from admin_api.store.codec import (
    dt_value,
    epoch,
    from_epoch,
    json_value,
    str_tuple,
    utcnow,
)
from admin_api.store.errors import NotFoundError
from pipeline.directory import KeyRecord

KEY_LIMIT_FIELDS = ("rpm", "tpm", "allowed_models", "allowed_providers", "budget_usd", "policy_id", "scopes", "role")
KEY_CREATE_FIELDS = KEY_LIMIT_FIELDS + ("expires_at", "source", "created_by")


def key_row(r: Row) -> dict[str, Any]:
    """The admin view of a key: never the hash, only prefix and last four characters."""
    expires_at = dt_value(r["expires_at"])
    return {
        "id": r["id"],
        "tenant_id": r["tenant_id"],
        "name": r["name"],
        "prefix": r["prefix"],
        "last4": r["last4"],
        "masked_key": f"{r['prefix']}…{r['last4']}",
        "source": r["source"],
        "status": r["status"],
        "expires_at": expires_at,
        "role": r["role"],
        "scopes": json_value(r["scopes"]) or [],
        "rpm": r["rpm"],
        "tpm": r["tpm"],
        "allowed_models": json_value(r["allowed_models"]),
        "allowed_providers": json_value(r["allowed_providers"]),
        "budget_usd": r["budget_usd"],
        "policy_id": r["policy_id"],
        "created_by": r["created_by"],
        "created_at": dt_value(r["created_at"]),
        "revoked_by": r["revoked_by"],
        "revoked_reason": r["revoked_reason"],
        "revoked_at": dt_value(r["revoked_at"]),
        "last_used_at": dt_value(r["last_used_at"]),
        "usage": {
            "requests": int(r["usage_requests"]),
            "tokens": int(r["usage_tokens"]),
            "cost_usd": float(r["usage_cost_usd"]),
        },
    }


def key_record(r: Row) -> KeyRecord:
    """The data plane's view of a key."""
    return KeyRecord(
        id=r["id"],
        tenant_id=r["tenant_id"],
        key_hash=r["key_hash"],
        name=r["name"],
        prefix=r["prefix"],
        status=r["status"],
        expires_at=epoch(r["expires_at"]),
        role=r["role"],
        scopes=str_tuple(r["scopes"]) or (),
        rpm=r["rpm"],
        tpm=r["tpm"],
        allowed_models=str_tuple(r["allowed_models"]),
        allowed_providers=str_tuple(r["allowed_providers"]),
        policy_id=r["policy_id"],
        budget_usd=r["budget_usd"],
    )


def effective_status(key: dict[str, Any], now: datetime) -> str:
    """active | expired | revoked, as the data plane would judge the key now."""
    if key["status"] == "revoked":
        return "revoked"
    if key["expires_at"] is not None and key["expires_at"] <= now:
        return "expired"
    return "active"


class KeysRepo(StoreBase):
    async def create_key(
        self, tenant_id: str, *, key_hash: str, prefix: str, last4: str, name: str, **fields: Any
    ) -> dict[str, Any]:
        """Store a new key by its hash; ConflictError if the hash exists, NotFoundError for a bad tenant."""
        unknown = set(fields) - set(KEY_CREATE_FIELDS)
        if unknown:
            raise TypeError(f"unknown key fields: {sorted(unknown)}")
        kid = new_id()
        async with self.db.transaction() as conn:
            await self._insert_key(conn, kid, tenant_id, key_hash, prefix, last4, name, fields)
        return await self.get_key(tenant_id, kid)

    async def _insert_key(
        self, conn: Any, kid: str, tenant_id: str, key_hash: str, prefix: str, last4: str, name: str,
        fields: dict[str, Any],
    ) -> None:
        await conn.execute(
            "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, last4, name, source, status, expires_at, role,"
            " scopes, rpm, tpm, allowed_models, allowed_providers, budget_usd, policy_id, created_by, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            kid, tenant_id, key_hash, prefix, last4, name, fields.get("source", "api"), fields.get("expires_at"),
            fields.get("role", "member"), list(fields.get("scopes") or []), fields.get("rpm"), fields.get("tpm"),
            fields.get("allowed_models"), fields.get("allowed_providers"), fields.get("budget_usd"),
            fields.get("policy_id"), fields.get("created_by"), utcnow(),
        )
        await self._change(conn, tenant_id, "key", kid)

    async def get_key(self, tenant_id: str, key_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow("SELECT * FROM api_keys WHERE tenant_id = $1 AND id = $2", tenant_id, key_id)
        if row is None:
            raise NotFoundError("API key not found")
        return key_row(row)

    async def find_key_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        """The key with this hash in any tenant (authentication only: the hash is the credential)."""
        row = await self.db.fetchrow("SELECT * FROM api_keys WHERE key_hash = $1", key_hash)
        return None if row is None else key_row(row)

    async def list_keys(
        self, tenant_id: str, *, status: str | None = None, limit: int = 50, after: str | None = None
    ) -> Page[dict[str, Any]]:
        """Keys of every status (or one: active | revoked | expired), newest first."""
        where: list[str] = ["tenant_id = $1"]
        args: list[Any] = [tenant_id]
        now = utcnow()
        if status == "revoked":
            where.append("status = 'revoked'")
        elif status == "active":
            args.append(now)
            where.append(f"status = 'active' AND (expires_at IS NULL OR expires_at > ${len(args)})")
        elif status == "expired":
            args.append(now)
            where.append(f"status = 'active' AND expires_at <= ${len(args)}")
        rows, more, total = await self._page("api_keys", where, args, limit=limit, after=after)
        items = [key_row(r) for r in rows]
        for k in items:
            k["effective_status"] = effective_status(k, now)
        return Page(items, more, total, items[-1]["id"] if more else None)

    async def update_key(self, tenant_id: str, key_id: str, **fields: Any) -> dict[str, Any]:
        """Change limits, restrictions, role, scopes or policy (None clears a limit)."""
        unknown = set(fields) - set(KEY_LIMIT_FIELDS + ("name",))
        if unknown:
            raise TypeError(f"unknown key fields: {sorted(unknown)}")
        if fields:
            names = sorted(fields)
            values = [list(fields[n]) if n == "scopes" else fields[n] for n in names]
            sets = ", ".join(f"{n} = ${i + 3}" for i, n in enumerate(names))
            async with self.db.transaction() as conn:
                count = await conn.execute(
                    f"UPDATE api_keys SET {sets} WHERE tenant_id = $1 AND id = $2", tenant_id, key_id, *values
                )
                if count == 0:
                    raise NotFoundError("API key not found")
                await self._change(conn, tenant_id, "key", key_id)
        return await self.get_key(tenant_id, key_id)

    async def revoke_key(self, tenant_id: str, key_id: str, *, revoked_by: str, reason: str) -> dict[str, Any]:
        """Revoke (idempotent: an already revoked key keeps its first revocation)."""
        async with self.db.transaction() as conn:
            exists = await conn.fetchval("SELECT 1 FROM api_keys WHERE tenant_id = $1 AND id = $2", tenant_id, key_id)
            if not exists:
                raise NotFoundError("API key not found")
            changed = await conn.execute(
                "UPDATE api_keys SET status = 'revoked', revoked_by = $3, revoked_reason = $4, revoked_at = $5"
                " WHERE tenant_id = $1 AND id = $2 AND status <> 'revoked'",
                tenant_id, key_id, revoked_by, reason, utcnow(),
            )
            if changed:
                await self._change(conn, tenant_id, "key", key_id)
        return await self.get_key(tenant_id, key_id)

    async def delete_key(self, tenant_id: str, key_id: str) -> None:
        async with self.db.transaction() as conn:
            count = await conn.execute("DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2", tenant_id, key_id)
            if count == 0:
                raise NotFoundError("API key not found")
            await self._change(conn, tenant_id, "key", key_id)

    async def key_stats(self, tenant_id: str) -> dict[str, Any]:
        """Counts by effective status and the most recent use."""
        now = utcnow()
        row = await self.db.fetchrow(
            "SELECT"
            " count(*) AS total,"
            " coalesce(sum(CASE WHEN status = 'revoked' THEN 1 ELSE 0 END), 0) AS revoked,"
            " coalesce(sum(CASE WHEN status = 'active' AND expires_at <= $2 THEN 1 ELSE 0 END), 0) AS expired,"
            " max(last_used_at) AS last_used_at,"
            " coalesce(sum(usage_requests), 0) AS requests,"
            " coalesce(sum(usage_tokens), 0) AS tokens,"
            " coalesce(sum(usage_cost_usd), 0) AS cost"
            " FROM api_keys WHERE tenant_id = $1",
            tenant_id, now,
        )
        assert row is not None
        total, revoked, expired = int(row["total"]), int(row["revoked"]), int(row["expired"])
        return {
            "total": total,
            "active": total - revoked - expired,
            "expired": expired,
            "revoked": revoked,
            "last_used_at": dt_value(row["last_used_at"]),
            "requests": int(row["requests"]),
            "tokens": int(row["tokens"]),
            "cost_usd": float(row["cost"]),
        }

    async def record_key_usage(self, rows: list[tuple[str, datetime | float, int, int, float]]) -> None:
        """Batched usage from the data plane: (key_id, last_used_at, requests, tokens, cost_usd) increments."""
        if not rows:
            return
        merged: dict[str, list[Any]] = {}
        for key_id, used_at, requests, tokens, cost in rows:
            when = used_at if isinstance(used_at, datetime) else from_epoch(used_at)
            cur = merged.get(key_id)
            if cur is None:
                merged[key_id] = [when, requests, tokens, cost]
            else:
                cur[0] = max(cur[0], when)
                cur[1] += requests
                cur[2] += tokens
                cur[3] += cost
        params = [(kid, v[0], v[1], v[2], float(v[3])) for kid, v in sorted(merged.items())]
        async with self.db.transaction() as conn:
            await conn.executemany(
                "UPDATE api_keys SET"
                " last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2 THEN $2 ELSE last_used_at END,"
                " usage_requests = usage_requests + $3, usage_tokens = usage_tokens + $4,"
                " usage_cost_usd = usage_cost_usd + $5"
                " WHERE id = $1",
                params,
            )

