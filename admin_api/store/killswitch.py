"""Kill switches on global, tenant, key, provider and model scope."""
from __future__ import annotations

from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Row
from admin_api.store.base import StoreBase
from admin_api.store.codec import dt_value, utcnow
from admin_api.store.errors import NotFoundError
from pipeline.directory import KillSwitchRecord

SCOPES = ("global", "tenant", "key", "provider", "model")


def switch_row(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "tenant_id": r["tenant_id"],
        "scope": r["scope"],
        "target": r["target"],
        "reason": r["reason"],
        "created_by": r["created_by"],
        "created_at": dt_value(r["created_at"]),
    }


def switch_record(r: Row) -> KillSwitchRecord:
    return KillSwitchRecord(scope=r["scope"], target=r["target"], reason=r["reason"], tenant_id=r["tenant_id"])


class KillSwitchRepo(StoreBase):
    async def set_kill_switch(
        self, tenant_id: str | None, scope: str, target: str, *, reason: str = "", created_by: str | None = None
    ) -> dict[str, Any]:
        """Switch something off (replacing an earlier switch on the same target).

        `tenant_id` None is platform-wide (global scope, or a provider/model for every tenant).
        A tenant switch targets the tenant itself; a key switch must name one of the tenant's keys.
        """
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        if scope == "global":
            tenant_id, target = None, "*"
        elif scope == "tenant":
            if tenant_id is None:
                raise ValueError("a tenant switch needs a tenant")
            target = tenant_id
        elif scope == "key" and tenant_id is None:
            raise ValueError("a key switch needs a tenant")
        sid = new_id()
        async with self.db.transaction() as conn:
            if scope == "key":
                owned = await conn.fetchval(
                    "SELECT 1 FROM api_keys WHERE tenant_id = $1 AND id = $2", tenant_id, target
                )
                if not owned:
                    raise NotFoundError("API key not found")
            await conn.execute(
                "DELETE FROM kill_switches WHERE coalesce(tenant_id, '') = $1 AND scope = $2 AND target = $3",
                tenant_id or "", scope, target,
            )
            await conn.execute(
                "INSERT INTO kill_switches (id, tenant_id, scope, target, reason, created_by, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                sid, tenant_id, scope, target, reason, created_by, utcnow(),
            )
            await self._change(conn, tenant_id, "kill_switch", sid)
            row = await conn.fetchrow("SELECT * FROM kill_switches WHERE id = $1", sid)
        assert row is not None
        return switch_row(row)

    async def clear_kill_switch(self, tenant_id: str | None, scope: str, target: str) -> None:
        """Switch back on; a tenant clears only its own switches, None clears platform-wide ones."""
        if scope == "global":
            target = "*"
        elif scope == "tenant" and tenant_id is not None:
            target = tenant_id
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT id FROM kill_switches WHERE coalesce(tenant_id, '') = $1 AND scope = $2 AND target = $3",
                tenant_id or "", scope, target,
            )
            if row is None:
                raise NotFoundError("kill switch not found")
            await conn.execute("DELETE FROM kill_switches WHERE id = $1", row["id"])
            await self._change(conn, tenant_id, "kill_switch", row["id"])

    async def list_kill_switches(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's own switches and the platform-wide ones that also apply to it."""
        rows = await self.db.fetch(
            "SELECT * FROM kill_switches WHERE tenant_id = $1 OR tenant_id IS NULL ORDER BY id", tenant_id
        )
        return [switch_row(r) for r in rows]

    async def kill_switch_records(self) -> tuple[KillSwitchRecord, ...]:
        """Every switch, for the data plane (it reloads them all on any kill_switch change)."""
        rows = await self.db.fetch("SELECT * FROM kill_switches ORDER BY id")
        return tuple(switch_record(r) for r in rows)
