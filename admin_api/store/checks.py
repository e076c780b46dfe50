"""Agent tool-call gating: pending checks (the review queue), tool-call traces, anomaly events.

Only checks that wait for a human are stored here (allowed and blocked ones are audit events).
A pending check resolves once: the first decision (a reviewer's or the timeout's) wins, later
ones see `decided=False`. Arbitrary JSON (arguments, results) is stored wrapped as
`{"value": ...}` so scalars round-trip on both backends.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from admin_api.store.backend import Row
from admin_api.store.base import Page, StoreBase
from admin_api.store.codec import dt_value, json_value, utcnow
from admin_api.store.errors import NotFoundError

CHECK_STATUSES = ("pending", "allowed", "blocked")
_STATUS_OF = {"allow": "allowed", "block": "blocked"}


def _unwrap(value: Any) -> Any:
    v = json_value(value)
    return v.get("value") if isinstance(v, dict) else v


def check_row(r: Row) -> dict[str, Any]:
    status = r["status"]
    return {
        "id": r["id"],
        "tenant_id": r["tenant_id"],
        "agent_id": r["agent_id"],
        "session_id": r["session_id"],
        "tool_name": r["tool_name"],
        "category": r["category"],
        "risk_level": r["risk_level"],
        "policy_name": r["policy_name"],
        "signals": json_value(r["signals"]) or [],
        "reasons": json_value(r["reasons"]) or [],
        "arguments": _unwrap(r["arguments"]),
        "anomaly_score": float(r["anomaly_score"]),
        "status": status,
        "decision": {"pending": "pending", "allowed": "allow", "blocked": "block"}[status],
        "timeout_decision": r["timeout_decision"],
        "decided_by": r["decided_by"],
        "decision_reason": r["decision_reason"],
        "created_at": dt_value(r["created_at"]),
        "expires_at": dt_value(r["expires_at"]),
        "decided_at": dt_value(r["decided_at"]),
    }


def trace_row(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"], "tenant_id": r["tenant_id"], "agent_id": r["agent_id"], "session_id": r["session_id"],
        "tool_name": r["tool_name"], "arguments": _unwrap(r["arguments"]), "result": _unwrap(r["result"]),
        "decision": r["decision"], "blocked": bool(r["blocked"]), "error": r["error"],
        "duration_ms": r["duration_ms"], "check_id": r["check_id"], "ts": dt_value(r["ts"]),
    }


def anomaly_row(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"], "tenant_id": r["tenant_id"], "agent_id": r["agent_id"], "check_id": r["check_id"],
        "tool_name": r["tool_name"], "score": float(r["score"]), "decision": r["decision"],
        "components": json_value(r["components"]) or {}, "ts": dt_value(r["ts"]),
    }


def _filters(base: list[str], args: list[Any], pairs: tuple[tuple[str, Any, str], ...]) -> None:
    for column, value, op in pairs:
        if value is not None:
            args.append(value)
            base.append(f"{column} {op} ${len(args)}")


class ChecksRepo(StoreBase):
    # ---- pending checks ------------------------------------------------------------------------

    async def create_pending_check(self, check: dict[str, Any]) -> None:
        """Store a check that waits for review (keys as in `check_row`, `expires_at` a datetime)."""
        await self.db.execute(
            "INSERT INTO tool_checks (id, tenant_id, agent_id, session_id, tool_name, category, risk_level,"
            " policy_name, signals, reasons, arguments, anomaly_score, status, timeout_decision, created_at,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14, $15)",
            check["id"], check["tenant_id"], check["agent_id"], check.get("session_id"), check["tool_name"],
            check["category"], check["risk_level"], check["policy_name"], list(check.get("signals") or ()),
            list(check.get("reasons") or ()), {"value": check.get("arguments")},
            float(check.get("anomaly_score") or 0.0), check["timeout_decision"], check.get("created_at") or utcnow(),
            check["expires_at"],
        )

    async def get_check(self, tenant_id: str, check_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow("SELECT * FROM tool_checks WHERE tenant_id = $1 AND id = $2", tenant_id, check_id)
        if row is None:
            raise NotFoundError("check not found")
        return check_row(row)

    async def decide_check(self, tenant_id: str, check_id: str, decision: str, *, decided_by: str,
                           reason: str | None = None) -> tuple[dict[str, Any], bool]:
        """Resolve a pending check; returns the row and whether this call resolved it."""
        if decision not in _STATUS_OF:
            raise ValueError("decision must be allow or block")
        changed = await self.db.execute(
            "UPDATE tool_checks SET status = $3, decided_by = $4, decision_reason = $5, decided_at = $6"
            " WHERE tenant_id = $1 AND id = $2 AND status = 'pending'",
            tenant_id, check_id, _STATUS_OF[decision], decided_by, reason, utcnow(),
        )
        return await self.get_check(tenant_id, check_id), bool(changed)

    async def expired_pending_checks(self, now: datetime | None = None, limit: int = 500) -> list[tuple[str, str]]:
        """(tenant_id, id) of pending checks past their review deadline, every tenant (for the sweeper)."""
        rows = await self.db.fetch(
            "SELECT tenant_id, id FROM tool_checks WHERE status = 'pending' AND expires_at <= $1 ORDER BY id LIMIT $2",
            now or utcnow(), limit,
        )
        return [(r["tenant_id"], r["id"]) for r in rows]

    async def list_checks(self, tenant_id: str, *, status: str | None = None, agent_id: str | None = None,
                          limit: int = 50, after: str | None = None) -> Page[dict[str, Any]]:
        where, args = ["tenant_id = $1"], [tenant_id]
        _filters(where, args, (("status", status, "="), ("agent_id", agent_id, "=")))
        rows, more, total = await self._page("tool_checks", where, args, limit=limit, after=after)
        items = [check_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)

    # ---- traces --------------------------------------------------------------------------------

    async def write_traces(self, traces: list[dict[str, Any]]) -> None:
        """Insert a batch of tool-call traces (idempotent on id)."""
        if not traces:
            return
        rows = [(t["id"], t["tenant_id"], t["agent_id"], t.get("session_id"), t["tool_name"],
                 {"value": t.get("arguments")}, {"value": t.get("result")}, t.get("decision"),
                 bool(t.get("blocked")), t.get("error"), t.get("duration_ms"), t.get("check_id"),
                 dt_value(t.get("ts")) or utcnow()) for t in traces]       # a str after a journal replay
        async with self.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO tool_traces (id, tenant_id, agent_id, session_id, tool_name, arguments, result,"
                " decision, blocked, error, duration_ms, check_id, ts)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (id) DO NOTHING",
                rows,
            )

    async def list_traces(self, tenant_id: str, *, agent_id: str | None = None, since: datetime | None = None,
                          until: datetime | None = None, blocked: bool | None = None, limit: int = 50,
                          after: str | None = None) -> Page[dict[str, Any]]:
        where, args = ["tenant_id = $1"], [tenant_id]
        _filters(where, args, (("agent_id", agent_id, "="), ("ts", since, ">="), ("ts", until, "<"),
                               ("blocked", blocked, "=")))
        rows, more, total = await self._page("tool_traces", where, args, limit=limit, after=after)
        items = [trace_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)

    # ---- anomalies -----------------------------------------------------------------------------

    async def write_anomalies(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        rows = [(e["id"], e["tenant_id"], e["agent_id"], e.get("check_id"), e["tool_name"], float(e["score"]),
                 e["decision"], dict(e.get("components") or {}), dt_value(e.get("ts")) or utcnow()) for e in events]
        async with self.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO tool_anomalies (id, tenant_id, agent_id, check_id, tool_name, score, decision,"
                " components, ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
                rows,
            )

    async def list_anomalies(self, tenant_id: str, *, min_score: float | None = None, agent_id: str | None = None,
                             decision: str | None = None, limit: int = 50,
                             after: str | None = None) -> Page[dict[str, Any]]:
        where, args = ["tenant_id = $1"], [tenant_id]
        _filters(where, args, (("score", min_score, ">="), ("agent_id", agent_id, "="), ("decision", decision, "=")))
        rows, more, total = await self._page("tool_anomalies", where, args, limit=limit, after=after)
        items = [anomaly_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)
