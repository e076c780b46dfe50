"""Inputs of the trust score (counts over the organization's own data), its settings and its history."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Row
from admin_api.store.base import Page, StoreBase
from admin_api.store.codec import dt_value, json_value, utcnow


def score_row(r: Row) -> dict[str, Any]:
    return {"id": r["id"], "ts": dt_value(r["ts"]), "score": float(r["score"]), "raw_score": float(r["raw_score"]),
            "grade": r["grade"], "pillars": json_value(r["pillars"]) or {}}


class TrustRepo(StoreBase):
    async def trust_inputs(self, tenant_id: str, *, days: int = 30, anomaly_days: int = 7) -> dict[str, Any]:
        """Raw counts the pillars are computed from."""
        since = utcnow() - timedelta(days=days)
        req = await self.db.fetchrow(
            "SELECT count(*) AS total, coalesce(sum(CASE WHEN blocked THEN 1 ELSE 0 END), 0) AS blocked,"
            " coalesce(sum(CASE WHEN status >= 500 THEN 1 ELSE 0 END), 0) AS errors"
            " FROM gateway_requests WHERE tenant_id = $1 AND ts >= $2", tenant_id, since)
        assert req is not None
        keys = await self.db.fetchrow(
            "SELECT count(*) AS total, coalesce(sum(CASE WHEN policy_id IS NOT NULL THEN 1 ELSE 0 END), 0) AS covered"
            " FROM api_keys WHERE tenant_id = $1 AND status = 'active'", tenant_id)
        assert keys is not None
        tenant_policy = await self.db.fetchval("SELECT policy_id FROM tenants WHERE id = $1", tenant_id)
        anomalies = await self.db.fetchval(
            "SELECT count(*) FROM tool_anomalies WHERE tenant_id = $1 AND ts >= $2", tenant_id,
            utcnow() - timedelta(days=anomaly_days))
        pending = await self.db.fetchval(
            "SELECT count(*) FROM tool_checks WHERE tenant_id = $1 AND status = 'pending'", tenant_id)
        switches = await self.db.fetchval("SELECT count(*) FROM kill_switches WHERE tenant_id = $1", tenant_id)
        providers = await self.db.fetchval(
            "SELECT count(*) FROM providers WHERE tenant_id = $1 AND status = 'active'", tenant_id)
        retention = await self.db.fetchval(
            "SELECT 1 FROM retention_policies WHERE tenant_id = $1 AND audit_days IS NOT NULL", tenant_id)
        return {
            "days": days, "requests": int(req["total"]), "blocked": int(req["blocked"]), "errors": int(req["errors"]),
            "active_keys": int(keys["total"]), "keys_with_policy": int(keys["covered"]),
            "tenant_policy": tenant_policy is not None, "recent_anomalies": int(anomalies or 0),
            "pending_checks": int(pending or 0), "kill_switches": int(switches or 0),
            "providers": int(providers or 0), "retention_configured": bool(retention),
        }

    async def get_trust_settings(self, tenant_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow("SELECT * FROM trust_settings WHERE tenant_id = $1", tenant_id)
        if row is None:
            return None
        return {"weights": json_value(row["weights"]) or {}, "half_life_h": float(row["half_life_h"]),
                "updated_at": dt_value(row["updated_at"])}

    async def set_trust_settings(self, tenant_id: str, *, weights: dict[str, float], half_life_h: float) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO trust_settings (tenant_id, weights, half_life_h, updated_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (tenant_id) DO UPDATE SET weights = $2, half_life_h = $3, updated_at = $4",
                tenant_id, weights, half_life_h, utcnow())

    async def latest_trust_score(self, tenant_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            "SELECT * FROM trust_scores WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1", tenant_id)
        return None if row is None else score_row(row)

    async def add_trust_score(self, tenant_id: str, *, ts: datetime, score: float, raw_score: float, grade: str,
                              pillars: dict[str, Any]) -> dict[str, Any]:
        sid = new_id()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO trust_scores (id, tenant_id, ts, score, raw_score, grade, pillars)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)", sid, tenant_id, ts, score, raw_score, grade, pillars)
        latest = await self.latest_trust_score(tenant_id)
        assert latest is not None
        return latest

    async def trust_history(self, tenant_id: str, *, limit: int = 50, after: str | None = None) -> Page[dict[str, Any]]:
        rows, more, total = await self._page("trust_scores", ["tenant_id = $1"], [tenant_id], limit=limit,
                                             after=after)
        items = [score_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)
