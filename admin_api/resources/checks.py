"""Tool-call review queue and agent tokens.

Reviewers (permission `checks:review`, or the owner / admin / security_admin roles, signed-in
users and admin API keys alike) list the
checks waiting for them and resolve them; the proxy's long-polling agents see the decision at
once through Redis when the apps share it, else on their next store read (a fraction of a second).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.http import ApiError, conflict, forbidden
from admin_api.resources.common import path_id
from admin_api.routing import Result, RouteTable
from admin_api.schemas import ID, TS, array, nullable, obj
from pipeline.checks.agent_token import MAX_TTL_S, AgentTokens

routes = RouteTable()

CHECKS_CHANNEL = "cm:checks"
REVIEW_ROLES = frozenset({"owner", "admin", "security_admin"})
_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
CHECK = obj({
    "id": ID, "tenant_id": ID, "agent_id": _STR, "session_id": _NSTR, "tool_name": _STR, "category": _STR,
    "risk_level": {"enum": ["LOW", "MEDIUM", "HIGH", "CRITICAL"]}, "policy_name": _STR,
    "signals": array(_STR), "reasons": array(_STR), "arguments": {}, "anomaly_score": {"type": "number"},
    "status": {"enum": ["pending", "allowed", "blocked"]}, "decision": {"enum": ["pending", "allow", "block"]},
    "timeout_decision": {"enum": ["allow", "block"]}, "decided_by": _NSTR, "decision_reason": _NSTR,
    "created_at": TS, "expires_at": TS, "decided_at": nullable(TS),
}, ("id", "agent_id", "tool_name", "status", "decision", "expires_at"))
DECIDE = obj({"decision": {"enum": ["allow", "block"]}, "reason": {"type": "string", "maxLength": 2000},
              "decided_by": {"type": "string", "maxLength": 200}}, ("decision",))
TOKEN_REQUEST = obj({"ttl_s": {"type": "integer", "minimum": 60, "maximum": MAX_TTL_S}})
TOKEN = obj({"agent_id": _STR, "token": _STR, "expires_at": TS, "header": _STR},
            ("agent_id", "token", "expires_at", "header"))
LIST_QUERY: dict[str, dict[str, Any]] = {"status": {"type": "string", "enum": ["pending", "allowed", "blocked"]},
              "agent_id": {"type": "string", "minLength": 1, "maxLength": 200}}


def _require_reviewer(ctx: Ctx) -> None:
    me = ctx.me
    if "checks:review" not in me.permissions and me.role not in REVIEW_ROLES:
        raise forbidden("missing permission checks:review")


async def _wake(ctx: Ctx, check_id: str) -> None:
    redis = getattr(ctx.settings.runtime, "redis", None)
    if redis is not None:
        try:
            await redis.publish(CHECKS_CHANNEL, check_id)
        except Exception:  # noqa: BLE001 - waiters re-read the store anyway
            pass


@routes.route("GET", "/api/v1/checks", summary="Tool-call checks waiting for review (and decided ones)",
              tag="checks", paginated=True, query=LIST_QUERY, response=array(CHECK))
async def list_checks(ctx: Ctx) -> Any:
    _require_reviewer(ctx)
    return await ctx.store.list_checks(ctx.tenant_id, status=ctx.query.get("status", "pending"),
                                       agent_id=ctx.query.get("agent_id"), limit=ctx.limit, after=ctx.after)


@routes.route("GET", "/api/v1/checks/{check_id}", summary="One stored check", tag="checks", response=CHECK)
async def get_check(ctx: Ctx) -> Any:
    _require_reviewer(ctx)
    return await ctx.store.get_check(ctx.tenant_id, path_id(ctx, "check_id", "check"))


@routes.route("POST", "/api/v1/checks/{check_id}/decision", summary="Allow or block a pending check",
              tag="checks", body=DECIDE, response=CHECK, problems=(409,))
async def decide_check(ctx: Ctx) -> Any:
    _require_reviewer(ctx)
    cid = path_id(ctx, "check_id", "check")
    before = await ctx.store.get_check(ctx.tenant_id, cid)
    if before["status"] != "pending":
        raise conflict(f"the check is already decided ({before['decision']})")
    if before["expires_at"] <= datetime.now(UTC):
        raise conflict("the review window has closed; the check resolves to its timeout decision")
    body = ctx.body
    after, changed = await ctx.store.decide_check(ctx.tenant_id, cid, body["decision"],
                                                  decided_by=body.get("decided_by") or ctx.me.actor,
                                                  reason=body.get("reason"))
    if not changed:
        raise conflict(f"the check is already decided ({after['decision']})")
    await audit(ctx, "check.decided", "tool_check", cid, before={"status": before["status"]},
                details={"decision": body["decision"], "decided_by": after["decided_by"],
                         "reason": body.get("reason"), "agent_id": after["agent_id"], "tool_name": after["tool_name"],
                         "risk_level": after["risk_level"]})
    await _wake(ctx, cid)
    return after


@routes.route("POST", "/api/v1/agents/{agent_id}/token", summary="Issue an agent token (X-Casemate-Agent-Token)",
              tag="checks", permission="keys:write", body=TOKEN_REQUEST, response=TOKEN, status=201)
async def issue_agent_token(ctx: Ctx) -> Any:
    agent_id = ctx.param("agent_id")
    if not 1 <= len(agent_id) <= 200:
        raise ApiError(400, "agent_id: must be 1 to 200 characters", code="ADM-400", title="Invalid request",
                       slug="validation-error")
    ttl = int(ctx.body.get("ttl_s", 30 * 86400))
    now = datetime.now(UTC)
    token = AgentTokens(ctx.settings.master_key).issue(agent_id=agent_id, tenant_id=ctx.tenant_id, ttl_s=ttl,
                                                       now=now.timestamp())
    await audit(ctx, "agent.token.issue", "agent", agent_id, details={"ttl_s": ttl})
    expires = (now + timedelta(seconds=ttl)).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Result({"agent_id": agent_id, "token": token, "expires_at": expires, "header": "X-Casemate-Agent-Token"},
                  status=201)
