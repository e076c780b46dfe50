"""Audit events and the gateway request log: batched, idempotent inserts; tenant-scoped reads."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Row
from admin_api.store.base import Page
from admin_api.store.codec import dt_value, from_epoch, json_value, utcnow
from admin_api.store.tlog import TransparencyRepo
from casemate_verify.canonical import normalize_json


def _ts(value: Any) -> datetime:
    if value is None:
        return utcnow()
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        dt = from_epoch(float(value))
        assert dt is not None
        return dt
    parsed = dt_value(str(value).replace("Z", "+00:00"))
    assert parsed is not None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def audit_row(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "tenant_id": r["tenant_id"],
        "ts": dt_value(r["ts"]),
        "actor": r["actor"],
        "action": r["action"],
        "resource_type": r["resource_type"],
        "resource_id": r["resource_id"],
        "outcome": r["outcome"],
        "request_id": r["request_id"],
        "details": json_value(r["details"]) or {},
    }


def request_row(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "tenant_id": r["tenant_id"],
        "key_id": r["key_id"],
        "model": r["model"],
        "provider": r["provider"],
        "status": r["status"],
        "blocked": bool(r["blocked"]),
        "reason": r["reason"],
        "prompt_tokens": r["prompt_tokens"],
        "completion_tokens": r["completion_tokens"],
        "total_tokens": r["total_tokens"],
        "cost_usd": r["cost_usd"],
        "latency_ms": r["latency_ms"],
        "security": json_value(r["security"]) or {},
        "ts": dt_value(r["ts"]),
    }


class EventsRepo(TransparencyRepo):
    # ---- audit ---------------------------------------------------------------------------------

    async def write_audit_events(self, events: list[dict[str, Any]], *, fresh: bool = False) -> None:
        """Insert a batch; an event whose id is already stored is skipped (replays are safe).

        `fresh=True` says the batch was never offered to the store before (new ids, first attempt),
        which skips the look-up of already stored ids. Should the caller be wrong, the unique event id
        of the log's leaves refuses the batch as a whole, and a retry without `fresh` sorts it out.

        Keys: id (made if absent), tenant_id, ts (datetime, unix seconds or RFC 3339), actor, action,
        resource_type, resource_id, outcome, request_id, details. Each new event gets its
        transparency-log leaf in the same transaction (details are stored as hashed: see
        `casemate_verify.canonical`).
        """
        if not events:
            return
        rows = [
            (
                e.get("id") or new_id(), e.get("tenant_id"), _ts(e.get("ts")), e.get("actor") or "system",
                e["action"], e.get("resource_type") or "", e.get("resource_id"), e.get("outcome") or "success",
                e.get("request_id"), normalize_json(e.get("details") or {}),
            )
            for e in events
        ]
        async with self.db.transaction() as conn:
            if self.dialect == "postgres":   # leaf indexes are assigned in commit order
                await conn.execute("SELECT pg_advisory_xact_lock(7420114)")
            if not fresh:
                rows = await self._unseen(conn, rows)
                if not rows:
                    return
            await conn.executemany(
                "INSERT INTO audit_events (id, tenant_id, ts, actor, action, resource_type, resource_id, outcome,"
                " request_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
                rows,
            )
            await self._append_leaves(conn, rows)

    async def list_audit_events(
        self, tenant_id: str, *, action: str | None = None, resource_type: str | None = None,
        resource_id: str | None = None, actor: str | None = None, since: datetime | None = None,
        until: datetime | None = None, limit: int = 50, after: str | None = None,
    ) -> Page[dict[str, Any]]:
        where: list[str] = ["tenant_id = $1"]
        args: list[Any] = [tenant_id]
        for column, value, op in (
            ("action", action, "="), ("resource_type", resource_type, "="), ("resource_id", resource_id, "="),
            ("actor", actor, "="), ("ts", since, ">="), ("ts", until, "<"),
        ):
            if value is not None:
                args.append(value)
                where.append(f"{column} {op} ${len(args)}")
        rows, more, total = await self._page("audit_events", where, args, limit=limit, after=after)
        items = [audit_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)

    # ---- gateway request log -------------------------------------------------------------------

    async def write_gateway_requests(self, requests: list[dict[str, Any]]) -> None:
        """Insert a batch of request-log rows (idempotent on id)."""
        if not requests:
            return
        rows = []
        for q in requests:
            prompt = int(q.get("prompt_tokens") or 0)
            completion = int(q.get("completion_tokens") or 0)
            rows.append((
                q.get("id") or new_id(), q["tenant_id"], q.get("key_id"), q.get("model"), q.get("provider"),
                int(q.get("status") or 0), bool(q.get("blocked")), q.get("reason"), prompt, completion,
                int(q.get("total_tokens") or prompt + completion), float(q.get("cost_usd") or 0.0),
                float(q.get("latency_ms") or 0.0), q.get("security") or {}, _ts(q.get("ts")),
            ))
        async with self.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO gateway_requests (id, tenant_id, key_id, model, provider, status, blocked, reason,"
                " prompt_tokens, completion_tokens, total_tokens, cost_usd, latency_ms, security, ts)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                " ON CONFLICT (id) DO NOTHING",
                rows,
            )

    async def list_gateway_requests(
        self, tenant_id: str, *, key_id: str | None = None, model: str | None = None,
        blocked: bool | None = None, since: datetime | None = None, until: datetime | None = None,
        limit: int = 50, after: str | None = None,
    ) -> Page[dict[str, Any]]:
        where: list[str] = ["tenant_id = $1"]
        args: list[Any] = [tenant_id]
        for column, value, op in (
            ("key_id", key_id, "="), ("model", model, "="), ("blocked", blocked, "="),
            ("ts", since, ">="), ("ts", until, "<"),
        ):
            if value is not None:
                args.append(value)
                where.append(f"{column} {op} ${len(args)}")
        rows, more, total = await self._page("gateway_requests", where, args, limit=limit, after=after)
        items = [request_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)

    async def get_gateway_request(self, tenant_id: str, request_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            "SELECT * FROM gateway_requests WHERE tenant_id = $1 AND id = $2", tenant_id, request_id
        )
        return None if row is None else request_row(row)

    async def usage_stats(self, tenant_id: str, *, days: int = 30, top: int = 5) -> dict[str, Any]:
        """Totals, per-day series, top models and top keys over the last `days` days."""
        since = utcnow() - timedelta(days=days)
        day = ("to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')" if self.dialect == "postgres"
               else "substr(ts, 1, 10)")
        sums = ("count(*) AS requests, coalesce(sum(total_tokens), 0) AS tokens,"
                " coalesce(sum(cost_usd), 0) AS cost,"
                " coalesce(sum(CASE WHEN blocked THEN 1 ELSE 0 END), 0) AS blocked")
        base = "FROM gateway_requests WHERE tenant_id = $1 AND ts >= $2"
        totals = await self.db.fetchrow(f"SELECT {sums} {base}", tenant_id, since)
        per_day = await self.db.fetch(f"SELECT {day} AS day, {sums} {base} GROUP BY 1 ORDER BY 1", tenant_id, since)
        models = await self.db.fetch(
            f"SELECT model, {sums} {base} GROUP BY model ORDER BY requests DESC, model LIMIT $3",
            tenant_id, since, top,
        )
        keys = await self.db.fetch(
            f"SELECT key_id, {sums} {base} GROUP BY key_id ORDER BY requests DESC, key_id LIMIT $3",
            tenant_id, since, top,
        )

        def sums_of(r: Row) -> dict[str, Any]:
            return {"requests": int(r["requests"]), "tokens": int(r["tokens"]), "cost_usd": float(r["cost"]),
                    "blocked": int(r["blocked"])}

        assert totals is not None
        return {
            "days": days,
            **sums_of(totals),
            "by_day": [{"day": r["day"], **sums_of(r)} for r in per_day],
            "top_models": [{"model": r["model"], **sums_of(r)} for r in models],
            "top_keys": [{"key_id": r["key_id"], **sums_of(r)} for r in keys],
        }
