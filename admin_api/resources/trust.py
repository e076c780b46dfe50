"""The trust score: a 0-100 composite with a letter grade, computed from the organization's own data.

Pillars (each clamped to 0..100; inputs over the last 30 days unless said otherwise):

* security      = 100 - 60 * min(1, block_rate / 0.20) - 8 * min(5, anomalies in the last 7 days)
                  block_rate = blocked gateway requests / gateway requests (0 without traffic)
* ai_governance = 100 * policy coverage; coverage = 1 when the organization has a default policy,
                  else active keys with a policy / active keys (1 without keys)
* compliance    = 60 * (the transparency log verifies: every stored event hashes to its leaf, no leaf
                  lost its event outside retention, the newest signed head matches) + 40 * (a retention
                  policy for audit events is set)
* resilience    = 70 * (1 - min(1, error_rate / 0.05)) + 30 * min(1, active providers / 2)
                  error_rate = gateway requests answered 5xx / gateway requests (error budget 5 %);
                  two providers make failover possible
* risk          = 100 - 10 * min(5, pending tool checks) - 25 * min(2, kill switches in force)

raw = sum(weight * pillar) / sum(weight); default weights security 0.30, ai_governance 0.20,
compliance 0.20, resilience 0.15, risk 0.15 (`PUT /trust/decay` changes them).
Exponential decay: score = previous + a * (raw - previous), a = 1 - 0.5 ** (hours since previous /
half_life_h) (default half-life 24 h; 0 disables smoothing), so one bad hour moves the score
gradually and an old score fades. Grade: A >= 90, B >= 80, C >= 70, D >= 60, else F.
The score is recalculated when the organization's events arrive (at most every few seconds) and on
request; a change is recorded as a `trust.score.updated` audit event (so webhooks and /ws get it).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.routing import RouteTable
from admin_api.schemas import ID, TS, array, obj
from admin_api.store import Store
from admin_api.store.codec import utcnow
from admin_api.store.tlog import log_id_for
from casemate_verify.canonical import leaf_hash
from casemate_verify.merkle import root_hash

log = logging.getLogger("casemate.admin.trust")

routes = RouteTable()

PILLARS = ("security", "ai_governance", "compliance", "resilience", "risk")
DEFAULT_WEIGHTS = {"security": 0.30, "ai_governance": 0.20, "compliance": 0.20, "resilience": 0.15, "risk": 0.15}
DEFAULT_HALF_LIFE_H = 24.0
FORMULAS = {
    "security": "100 - 60*min(1, block_rate/0.20) - 8*min(5, anomalies_7d)",
    "ai_governance": "100 * policy_coverage",
    "compliance": "60*log_verified + 40*retention_configured",
    "resilience": "70*(1 - min(1, error_rate/0.05)) + 30*min(1, providers/2)",
    "risk": "100 - 10*min(5, pending_checks) - 25*min(2, kill_switches)",
}
UPDATED = "trust.score.updated"


def _clamp(x: float) -> float:
    return round(max(0.0, min(100.0, x)), 2)


def grade(score: float) -> str:
    for threshold, letter in ((90, "A"), (80, "B"), (70, "C"), (60, "D")):
        if score >= threshold:
            return letter
    return "F"


def pillar_scores(i: dict[str, Any], log_verified: bool) -> dict[str, float]:
    requests = i["requests"]
    block_rate = i["blocked"] / requests if requests else 0.0
    error_rate = i["errors"] / requests if requests else 0.0
    if i["tenant_policy"] or not i["active_keys"]:
        coverage = 1.0
    else:
        coverage = i["keys_with_policy"] / i["active_keys"]
    return {
        "security": _clamp(100 - 60 * min(1.0, block_rate / 0.20) - 8 * min(5, i["recent_anomalies"])),
        "ai_governance": _clamp(100 * coverage),
        "compliance": _clamp(60 * log_verified + 40 * i["retention_configured"]),
        "resilience": _clamp(70 * (1 - min(1.0, error_rate / 0.05)) + 30 * min(1.0, i["providers"] / 2)),
        "risk": _clamp(100 - 10 * min(5, i["pending_checks"]) - 25 * min(2, i["kill_switches"])),
    }


def composite(pillars: dict[str, float], weights: dict[str, float]) -> float:
    total = sum(weights.get(p, 0.0) for p in PILLARS)
    if total <= 0:
        return 0.0
    return round(sum(weights.get(p, 0.0) * pillars[p] for p in PILLARS) / total, 2)


def decayed(previous: float | None, raw: float, hours: float, half_life_h: float) -> float:
    if previous is None or half_life_h <= 0:
        return raw
    alpha = 1 - 0.5 ** (max(0.0, hours) / half_life_h)
    return round(previous + alpha * (raw - previous), 2)


async def log_verifies(store: Store, tenant_id: str) -> bool:
    """Recompute every leaf of the organization's log and the newest signed head's root."""
    log_id = log_id_for(tenant_id)
    size = await store.log_size(log_id)
    leaves: list[bytes] = []
    async for entry in store.iter_log_entries(log_id, size):
        stored = bytes.fromhex(entry["leaf_hash"])
        if "id" in entry:
            if leaf_hash(entry) != stored:
                return False
        elif not entry.get("purged"):
            return False
        leaves.append(stored)
    head = await store.latest_tree_head(log_id)
    return head is None or head["tree_size"] > len(leaves) or root_hash(leaves[:head["tree_size"]]) == head["root_hash"]


async def settings_of(store: Store, tenant_id: str) -> tuple[dict[str, float], float]:
    saved = await store.get_trust_settings(tenant_id)
    if saved is None:
        return dict(DEFAULT_WEIGHTS), DEFAULT_HALF_LIFE_H
    return {**DEFAULT_WEIGHTS, **saved["weights"]}, saved["half_life_h"]


async def evaluate(store: Store, tenant_id: str) -> dict[str, Any]:
    """The pillars with their inputs and formulas, and the raw composite (nothing stored)."""
    inputs = await store.trust_inputs(tenant_id)
    verified = await log_verifies(store, tenant_id)
    pillars = pillar_scores(inputs, verified)
    weights, half_life = await settings_of(store, tenant_id)
    return {"pillars": pillars, "weights": weights, "half_life_h": half_life, "raw_score": composite(pillars, weights),
            "inputs": {**inputs, "log_verified": verified}}


async def recalculate(store: Store, tenant_id: str, *, actor: str = "system:trust") -> dict[str, Any]:
    """Compute, decay against the previous score, keep a snapshot, and record a change as an audit event."""
    result = await evaluate(store, tenant_id)
    previous = await store.latest_trust_score(tenant_id)
    now = utcnow()
    hours = 0.0 if previous is None else (now - previous["ts"]).total_seconds() / 3600
    score = decayed(None if previous is None else previous["score"], result["raw_score"], hours,
                    result["half_life_h"])
    if previous is not None and abs(previous["score"] - score) < 0.05 and previous["pillars"] == result["pillars"]:
        return previous
    snapshot = await store.add_trust_score(tenant_id, ts=now, score=score, raw_score=result["raw_score"],
                                           grade=grade(score), pillars=result["pillars"])
    await store.write_audit_events([{
        "tenant_id": tenant_id, "actor": actor, "action": UPDATED, "resource_type": "trust_score",
        "resource_id": snapshot["id"], "details": {
            "score": score, "grade": snapshot["grade"], "raw_score": result["raw_score"],
            "previous": None if previous is None else previous["score"], "pillars": result["pillars"]}}])
    return snapshot


class TrustRecalculator:
    """Dispatcher sink + loop: organizations with new events are recalculated every `interval_s` at most."""

    def __init__(self, store: Store, interval_s: float = 5.0) -> None:
        self._store = store
        self._interval = interval_s
        self._dirty: set[str] = set()

    async def sink(self, event: dict[str, Any], event_type: str) -> None:
        if event["action"] != UPDATED:
            self._dirty.add(event["tenant_id"])

    async def run_once(self) -> int:
        tenants, self._dirty = self._dirty, set()
        for tenant_id in tenants:
            try:
                await recalculate(self._store, tenant_id)
            except Exception:
                log.exception("trust score of %s could not be recalculated", tenant_id)
        return len(tenants)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self._interval)
            if not stopping.is_set():
                await self.run_once()


SCORE = obj({"id": ID, "ts": TS, "score": {"type": "number"}, "raw_score": {"type": "number"},
             "grade": {"type": "string", "enum": ["A", "B", "C", "D", "F"]}, "pillars": {"type": "object"}})
PILLAR = obj({"name": {"type": "string"}, "score": {"type": "number"}, "weight": {"type": "number"},
              "formula": {"type": "string"}})
PILLARS_DOC = obj({"pillars": array(PILLAR), "raw_score": {"type": "number"}, "half_life_h": {"type": "number"},
                   "inputs": {"type": "object"}})
WEIGHT = {"type": "number", "minimum": 0, "maximum": 100}
DECAY_BODY = obj({"half_life_hours": {"type": "number", "minimum": 0, "maximum": 8760},
                  "weights": obj({p: WEIGHT for p in PILLARS}, min_properties=1)}, ("half_life_hours",))
DECAY = obj({"half_life_hours": {"type": "number"}, "weights": {"type": "object"}})


@routes.route("GET", "/api/v1/trust/scores/current", summary="The organization's trust score, recalculated now",
              tag="trust", permission="audit:read", response=SCORE)
async def current_score(ctx: Ctx) -> Any:
    return await recalculate(ctx.store, ctx.tenant_id)


@routes.route("GET", "/api/v1/trust/scores/history", summary="Earlier trust scores, newest first", tag="trust",
              permission="audit:read", paginated=True, response=array(SCORE))
async def score_history(ctx: Ctx) -> Any:
    return await ctx.store.trust_history(ctx.tenant_id, limit=ctx.limit, after=ctx.after)


@routes.route("GET", "/api/v1/trust/pillars", summary="Pillar scores with their inputs, weights and formulas",
              tag="trust", permission="audit:read", response=PILLARS_DOC)
async def pillars(ctx: Ctx) -> Any:
    result = await evaluate(ctx.store, ctx.tenant_id)
    return {"pillars": [{"name": p, "score": result["pillars"][p], "weight": result["weights"][p],
                         "formula": FORMULAS[p]} for p in PILLARS],
            "raw_score": result["raw_score"], "half_life_h": result["half_life_h"], "inputs": result["inputs"]}


@routes.route("PUT", "/api/v1/trust/decay", summary="Set the decay half-life and (optionally) pillar weights",
              tag="trust", permission="tenants:write", body=DECAY_BODY, response=DECAY)
async def set_decay(ctx: Ctx) -> Any:
    weights, _ = await settings_of(ctx.store, ctx.tenant_id)
    weights = {**weights, **ctx.body.get("weights", {})}
    await ctx.store.set_trust_settings(ctx.tenant_id, weights=weights, half_life_h=ctx.body["half_life_hours"])
    result = {"half_life_hours": ctx.body["half_life_hours"], "weights": weights}
    await audit(ctx, "trust.settings.update", "trust_settings", ctx.tenant_id, after=result)
    return result
