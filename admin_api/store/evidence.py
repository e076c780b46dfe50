"""The audit trail as evidence: filtered search, ordered export, retention policies and purges."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from admin_api.store.backend import Row
from admin_api.store.base import Page
from admin_api.store.codec import dt_value, utcnow
from admin_api.store.events import audit_row
from admin_api.store.tlog import TransparencyRepo, log_id_for

_PURGE_BATCH = 500


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What `GET /audit/events` and the exports select; every field optional."""

    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    actor: str | None = None
    q: str | None = None                 # case-insensitive substring of action, type, ids, actor or details
    since: datetime | None = None        # inclusive
    until: datetime | None = None        # exclusive


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def retention_row(r: Row | None, tenant_id: str) -> dict[str, Any]:
    if r is None:
        return {"tenant_id": tenant_id, "audit_days": None, "request_log_days": None, "updated_by": None,
                "updated_at": None}
    return {"tenant_id": r["tenant_id"], "audit_days": r["audit_days"], "request_log_days": r["request_log_days"],
            "updated_by": r["updated_by"], "updated_at": dt_value(r["updated_at"])}


class EvidenceRepo(TransparencyRepo):
    def _audit_where(self, tenant_id: str, f: AuditFilter) -> tuple[list[str], list[Any]]:
        where: list[str] = ["tenant_id = $1"]
        args: list[Any] = [tenant_id]
        for column, value, op in (
            ("action", f.action, "="), ("resource_type", f.resource_type, "="), ("resource_id", f.resource_id, "="),
            ("actor", f.actor, "="), ("ts", f.since, ">="), ("ts", f.until, "<"),
        ):
            if value is not None:
                args.append(value)
                where.append(f"{column} {op} ${len(args)}")
        if f.q:
            args.append(_like(f.q.lower()))
            details = "details::text" if self.dialect == "postgres" else "details"
            where.append(f"lower(action || ' ' || resource_type || ' ' || coalesce(resource_id, '') || ' ' || actor"
                         f" || ' ' || coalesce(request_id, '') || ' ' || {details}) LIKE ${len(args)} ESCAPE '\\'")
        return where, args

    async def search_audit_events(self, tenant_id: str, f: AuditFilter, *, limit: int = 50,
                                  after: str | None = None) -> Page[dict[str, Any]]:
        """One page of the tenant's audit events matching `f`, newest first."""
        where, args = self._audit_where(tenant_id, f)
        rows, more, total = await self._page("audit_events", where, args, limit=limit, after=after)
        items = [audit_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)

    async def iter_audit_events(self, tenant_id: str, f: AuditFilter, *,
                                batch: int = 500) -> AsyncIterator[dict[str, Any]]:
        """Every matching event, oldest first, read in keyset batches (for streamed exports)."""
        where, args = self._audit_where(tenant_id, f)
        after: str | None = None
        while True:
            page_args = list(args)
            cond = " AND ".join(where)
            if after is not None:
                page_args.append(after)
                cond += f" AND id > ${len(page_args)}"
            page_args.append(batch)
            rows = await self.db.fetch(
                f"SELECT * FROM audit_events WHERE {cond} ORDER BY id LIMIT ${len(page_args)}", *page_args)
            for r in rows:
                yield audit_row(r)
            if len(rows) < batch:
                return
            after = rows[-1]["id"]

    async def get_audit_event(self, tenant_id: str, event_id: str) -> dict[str, Any] | None:
        """One event of the tenant with its transparency-log leaf index."""
        row = await self.db.fetchrow(
            "SELECT e.*, l.leaf_index AS leaf_index FROM audit_events e"
            " LEFT JOIN tlog_leaves l ON l.event_id = e.id WHERE e.tenant_id = $1 AND e.id = $2",
            tenant_id, event_id)
        if row is None:
            return None
        return {**audit_row(row), "leaf_index": row["leaf_index"]}

    # ---- retention ------------------------------------------------------------------------------

    async def get_retention(self, tenant_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow("SELECT * FROM retention_policies WHERE tenant_id = $1", tenant_id)
        return retention_row(row, tenant_id)

    async def set_retention(self, tenant_id: str, *, audit_days: int | None, request_log_days: int | None,
                            updated_by: str | None) -> dict[str, Any]:
        """Keep audit events / request-log rows for that many days (None: forever)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO retention_policies (tenant_id, audit_days, request_log_days, updated_by, updated_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO UPDATE SET audit_days = $2,"
                " request_log_days = $3, updated_by = $4, updated_at = $5",
                tenant_id, audit_days, request_log_days, updated_by, utcnow())
        return await self.get_retention(tenant_id)

    async def retention_tenants(self) -> list[str]:
        """Tenants with a retention policy that limits something."""
        rows = await self.db.fetch(
            "SELECT tenant_id FROM retention_policies WHERE audit_days IS NOT NULL OR request_log_days IS NOT NULL"
            " ORDER BY tenant_id")
        return [r["tenant_id"] for r in rows]

    async def purge_expired(self, tenant_id: str, *, now: datetime | None = None) -> dict[str, Any]:
        """Delete what the tenant's retention policy no longer keeps.

        Audit events are deleted in batches; their transparency-log leaves stay, marked purged, in the
        same transaction, so signed tree heads remain verifiable. Returns the counts and cut-offs.
        The caller records the purge as an audit event.
        """
        policy = await self.get_retention(tenant_id)
        now = now or utcnow()
        result: dict[str, Any] = {"audit_events": 0, "gateway_requests": 0, "audit_before": None,
                                  "requests_before": None}
        if policy["audit_days"] is not None:
            cutoff = now - timedelta(days=policy["audit_days"])
            result["audit_before"] = cutoff
            while True:
                async with self.db.transaction() as conn:
                    if self.dialect == "postgres":
                        await conn.execute("SELECT pg_advisory_xact_lock(7420114)")
                    rows = await conn.fetch(
                        "SELECT id FROM audit_events WHERE tenant_id = $1 AND ts < $2 ORDER BY id LIMIT $3",
                        tenant_id, cutoff, _PURGE_BATCH)
                    ids = [r["id"] for r in rows]
                    if ids:
                        await self._mark_purged(conn, ids)
                        marks = ", ".join(f"${i + 2}" for i in range(len(ids)))
                        await conn.execute(
                            f"DELETE FROM audit_events WHERE tenant_id = $1 AND id IN ({marks})", tenant_id, *ids)
                result["audit_events"] += len(ids)
                if len(ids) < _PURGE_BATCH:
                    break
        if policy["request_log_days"] is not None:
            cutoff = now - timedelta(days=policy["request_log_days"])
            result["requests_before"] = cutoff
            async with self.db.transaction() as conn:
                result["gateway_requests"] = await conn.execute(
                    "DELETE FROM gateway_requests WHERE tenant_id = $1 AND ts < $2", tenant_id, cutoff)
        return result


__all__ = ["AuditFilter", "EvidenceRepo", "log_id_for"]
