"""Agent tool-call gating on the proxy: /api/v1/check, human review, traces, anomalies.

    POST  /api/v1/check                        decide a tool call (allow | block | pending)
    GET   /api/v1/check/{id}/decision?wait=N   a pending check's decision (long-poll up to N s, max 60)
    PATCH /api/v1/check/{id}                   resolve a pending check (permission checks:review)
    POST  /api/v1/traces                       ingest tool-call traces (201 at once; written in batches)
    GET   /api/v1/traces                       list traces (agent_id, from, to, blocked, limit, cursor)
    GET   /api/v1/anomalies                    list anomaly events (min_score, agent_id, decision, ...)
    POST|GET|DELETE /mcp                       MCP firewall (see proxy/mcp_firewall.py), when configured

The decision path never awaits the database: the policy is memoised by the directory, the
compiled rules by policy fingerprint, and allowed / blocked checks are recorded as audit events
through the audit writer's queue. Only a pending check is written before answering (the agent
polls it next, possibly on another worker). Review wake-ups cross workers through Redis pub/sub
when configured; waiters also re-read the store periodically, so a decision made anywhere
(the admin API included) is seen without Redis too.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

import fastjsonschema
import orjson
from aiohttp import web

from pipeline.checks.agent_token import AgentTokenError, AgentTokens
from pipeline.checks.api import ANOMALIES_QUERY, CHECK_BODY, DECIDE_BODY, MAX_WAIT_S, TRACES_BODY, TRACES_QUERY
from pipeline.checks.baseline_sync import BaselineSync
from pipeline.checks.engine import CheckEngine, CheckRequest, Verdict
from pipeline.checks.rules import CompiledRules, RulesCache
from pipeline.clock import now_rfc3339
from pipeline.context import Principal, RequestContext
from pipeline.errors import Forbidden, HttpProblem, NotFound, StageError, Unauthenticated, ValidationFailed
from pipeline.ids import uuid7_str
from pipeline.stages.authenticate import bearer_token
from pipeline.stages.request_id import assign_request_id
from proxy.batch_writer import BatchWriter
from proxy.journal import Journal
from proxy.problems import problem_response

log = logging.getLogger("casemate.checks")

CHECKS_CHANNEL = "cm:checks"
VERSION = "0.1.0"
REVIEW_ROLES = frozenset({"owner", "admin", "security_admin"})
AGENT_PERMISSIONS = frozenset({"checks:write", "traces:write"})
_POLL_S_LOCAL = 0.25           # store re-read interval while long-polling without Redis
_POLL_S_REDIS = 2.0            # with Redis wake-ups (a safety net only)
_UUID_LEN = 36

_check_body = fastjsonschema.compile(CHECK_BODY)
_decide_body = fastjsonschema.compile(DECIDE_BODY)
_traces_body = fastjsonschema.compile(TRACES_BODY)


def _conflict(detail: str) -> HttpProblem:
    return HttpProblem(409, "Conflict", detail, error_code="CHK-409", slug="conflict")


def _invalid(exc: fastjsonschema.JsonSchemaValueException, root: str = "body") -> ValidationFailed:
    name = exc.name or "data"
    where = name.replace("data", root, 1)
    return ValidationFailed(f"{where}: {exc.message.replace(name + ' ', '')}", extra={"field": where},
                            reason="invalid_request")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    return value


def _server_timing(ctx: RequestContext) -> str:
    """`Server-Timing` value: the proxy's own time for the request so far (clients and the bench read it)."""
    return "app;dur=%.3f" % ((perf_counter() - ctx.started) * 1000.0)


def encode_cursor(after_id: str) -> str:
    return base64.urlsafe_b64encode(f"c1:{after_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    if not raw.startswith("c1:") or len(raw) != 3 + _UUID_LEN:
        raise ValidationFailed("cursor: is not valid", extra={"field": "cursor"}, reason="invalid_request")
    return raw[3:]


class CheckService:
    """One worker's check state: engine, compiled-rules cache, review waiters, trace/anomaly writers."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self.rules = RulesCache()
        self.tokens = AgentTokens(rt.master)
        self.engine: CheckEngine | None = None
        self.traces: BatchWriter | None = None
        self.anomalies: BatchWriter | None = None
        self.baseline_sync: BaselineSync | None = None
        self._waiters: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._auth: tuple[Any, Any] | None = None
        self._limiter: tuple[Any] | None = None
        self._counters: dict[tuple[str, int], Any] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        det = self.rt.detectors
        self.engine = CheckEngine(injection=getattr(det, "injection", None), secrets=getattr(det, "secrets", None),
                                  pii=getattr(det, "pii", None))
        store = self.rt.store
        journals = Path(self.rt.settings.data_dir) / "journal"
        worker, workers = getattr(self.rt, "worker", 0), self.rt.settings.workers
        self.traces = BatchWriter("traces", store.write_traces,
                                  Journal(journals, "traces", worker=worker, workers=workers), store.ping)
        self.anomalies = BatchWriter("anomalies", store.write_anomalies,
                                     Journal(journals, "anomalies", worker=worker, workers=workers), store.ping)
        self.traces.start()
        self.anomalies.start()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._sweep(), name="casemate-check-sweeper"))
        if self.rt.redis is not None:
            self._tasks.append(loop.create_task(self._subscribe(), name="casemate-check-wakeups"))
            # anomaly baselines shared by every worker and host, kept across restarts (synced off the hot path)
            self.baseline_sync = BaselineSync(self.engine.baselines, self.rt.redis)
            self._tasks.append(loop.create_task(self.baseline_sync.run(), name="casemate-baseline-sync"))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._tasks.clear()
        for w in (self.traces, self.anomalies):
            if w is not None:
                await w.close()

    # -- rate limit ----------------------------------------------------------------------------
    async def rate_limit(self, ctx: RequestContext) -> None:
        """Count one request against the caller's tenant and key, in a window of its own.

        Tool checks, trace uploads and MCP messages get the same requests-per-minute limits as chat
        (`rpm` of the key, else of the tenant, else the platform default) but are counted apart from
        chat, so a busy agent cannot starve its organisation's chat traffic, nor the reverse. The
        `X-RateLimit-*` headers go on the answer; over the limit raises 429 with Retry-After.
        """
        stage = self._limit_stage()
        if stage is not None:
            await stage.limit_apart(ctx, "c")

    def _limit_stage(self) -> Any:
        if self._limiter is None:
            chain = self.rt.chain
            assert chain is not None
            self._limiter = (chain.stage("rate_limit"),)
        return self._limiter[0]

    # -- authentication ------------------------------------------------------------------------
    def _stages(self) -> tuple[Any, Any]:
        if self._auth is None:
            chain = self.rt.chain
            assert chain is not None
            self._auth = (chain.stage("authenticate"), chain.stage("kill_switch"))
        return self._auth

    def authenticate(self, ctx: RequestContext) -> tuple[Principal, str | None]:
        """API key / user JWT through the chain's own stage, and/or an agent JWT; returns the agent id
        the token fixes (None without one)."""
        auth, kill = self._stages()
        agent_token = ctx.headers.get("X-Casemate-Agent-Token")
        principal: Principal | None = None
        if bearer_token(ctx.headers):
            auth(ctx)
            principal = ctx.principal
        agent_id = None
        if agent_token:
            try:
                claims = self.tokens.verify(agent_token.strip())
            except AgentTokenError as exc:
                raise Unauthenticated(f"Agent token refused: {exc}.", error_code="AUTH-008",
                                      reason="invalid_agent_token") from None
            if principal is not None and principal.tenant_id != claims.tenant_id:
                raise Forbidden("The agent token belongs to another organization than the API key.",
                                error_code="AUTH-009", reason="agent_tenant_mismatch")
            agent_id = claims.agent_id
            if principal is None:
                tenant = self.rt.directory.tenants.get(claims.tenant_id)
                if tenant is None or tenant.status != "active":
                    raise Forbidden("The agent's organization is not active.", error_code="AUTH-006",
                                    reason="tenant_suspended")
                principal = Principal(tenant_id=tenant.id, tenant_name=tenant.name, subject=agent_id, kind="agent",
                                      role="agent", permissions=AGENT_PERMISSIONS)
                ctx.principal = principal
        if principal is None:
            raise Unauthenticated("Missing credentials: send an API key ('Authorization: Bearer <key>' or "
                                  "'X-Casemate-API-Key') or 'X-Casemate-Agent-Token'.", error_code="AUTH-001",
                                  reason="missing_key")
        kill(ctx)
        return principal, agent_id

    @staticmethod
    def require(principal: Principal, *perms: str) -> None:
        if not any(p in principal.permissions for p in perms):
            raise Forbidden(f"Missing permission {perms[0]}.", error_code="AUTH-003", reason="forbidden")

    @staticmethod
    def can_review(principal: Principal) -> bool:
        return "checks:review" in principal.permissions or (principal.kind == "user" and
                                                            principal.role in REVIEW_ROLES)

    # -- decisions ------------------------------------------------------------------------------
    def compiled_rules(self, principal: Principal, agent_id: str) -> tuple[Any, CompiledRules]:
        d = self.rt.directory
        key = d.keys_by_id.get(principal.subject) if principal.kind == "api_key" else None
        policy = d.effective_policy(principal.tenant_id, key)
        return policy, self.rules.get(policy.fingerprint, policy.document.get("tool_rules") or {}, agent_id)

    def decide(self, principal: Principal, agent_id: str, body: dict[str, Any], request_id: str
               ) -> tuple[str, Any, Verdict]:
        assert self.engine is not None
        policy, rules = self.compiled_rules(principal, agent_id)
        req = CheckRequest(tenant_id=principal.tenant_id, agent_id=agent_id, tool_name=body["tool_name"],
                           arguments=body.get("arguments"), session_id=body.get("session_id"),
                           context=body.get("context"))
        verdict = self.engine.evaluate(rules, req)
        check_id = uuid7_str()
        if verdict.anomaly_score >= rules.anomaly_threshold and rules.anomaly_enabled and self.anomalies:
            self.anomalies.submit({"id": uuid7_str(), "ts": datetime.now(UTC), "tenant_id": principal.tenant_id,
                                   "agent_id": agent_id,
                                   "check_id": check_id, "tool_name": req.tool_name, "score": verdict.anomaly_score,
                                   "decision": verdict.decision, "components": verdict.anomaly_components})
        return check_id, policy, verdict

    def audit(self, action: str, principal: Principal, check_id: str, request_id: str,
              details: dict[str, Any]) -> None:
        audit = self.rt.audit
        if audit is None:
            return
        audit.submit({"id": uuid7_str(), "tenant_id": principal.tenant_id, "ts": datetime.now(UTC),
                      "actor": f"{principal.kind}:{principal.subject}", "request_id": request_id, "action": action,
                      "resource_type": "tool_check", "resource_id": check_id,
                      "outcome": "denied" if action == "check.blocked" else "success", "details": details}, {},
                     ((), 0))

    @staticmethod
    def answer(check_id: str, policy: Any, agent_id: str, body: dict[str, Any], v: Verdict) -> dict[str, Any]:
        return {"check_id": check_id, "decision": v.decision, "policy_name": policy.name, "risk_level": v.risk_level,
                "classification": {"category": v.category, "signals": v.signals},
                "anomaly_score": v.anomaly_score, "reasons": v.reasons, "agent_id": agent_id,
                "tool_name": body["tool_name"], "session_id": body.get("session_id")}

    async def store_pending(self, principal: Principal, check_id: str, policy: Any, agent_id: str,
                            body: dict[str, Any], v: Verdict) -> datetime:
        expires = datetime.now(UTC) + timedelta(seconds=v.timeout_s)
        await self.rt.store.create_pending_check({
            "id": check_id, "tenant_id": principal.tenant_id, "agent_id": agent_id,
            "session_id": body.get("session_id"), "tool_name": body["tool_name"], "category": v.category,
            "risk_level": v.risk_level, "policy_name": policy.name, "signals": v.signals, "reasons": v.reasons,
            "arguments": body.get("arguments"), "anomaly_score": v.anomaly_score,
            "timeout_decision": v.timeout_decision, "expires_at": expires,
        })
        return expires

    async def run_check(self, principal: Principal, agent_id: str, body: dict[str, Any], request_id: str
                        ) -> tuple[dict[str, Any], Verdict]:
        """Decide, record (audit; the stored row for a pending check) and build the answer."""
        check_id, policy, v = self.decide(principal, agent_id, body, request_id)
        data = self.answer(check_id, policy, agent_id, body, v)
        details = {"agent_id": agent_id, "tool_name": body["tool_name"], "session_id": body.get("session_id"),
                   "category": v.category, "signals": v.signals, "risk_level": v.risk_level,
                   "reasons": v.reasons, "policy": policy.name, "anomaly_score": v.anomaly_score}
        if v.decision == "pending":
            try:
                expires = await self.store_pending(principal, check_id, policy, agent_id, body, v)
            except Exception as exc:  # noqa: BLE001 - no durable review possible: fail closed, say why
                log.error("pending check %s could not be stored (%s); blocking it", check_id, exc.__class__.__name__)
                v.decision = data["decision"] = "block"
                v.reasons.append("human review is unavailable (the store did not answer); blocked")
                details["reasons"] = v.reasons
                self.audit("check.blocked", principal, check_id, request_id, details)
                return data, v
            data["review"] = {"expires_at": _iso(expires), "timeout_decision": v.timeout_decision,
                              "poll": f"/api/v1/check/{check_id}/decision"}
            self.audit("check.pending", principal, check_id, request_id, details)
        else:
            self.audit("check.allowed" if v.decision == "allow" else "check.blocked", principal, check_id,
                       request_id, details)
        return data, v

    def tool_hidden(self, principal: Principal, agent_id: str, name: str, arg_keys: list[str]) -> bool:
        """Whether the policy refuses every call of this tool (so an MCP tool list should not offer it)."""
        assert self.engine is not None
        _, rules = self.compiled_rules(principal, agent_id)
        if not rules.enabled:
            return False
        rule = rules.tool(name)
        if rule is not None and rule.action == "block":
            return True
        if rule is None and rules.unknown_tools == "block":
            return True
        category = self.engine.category(rules, name, arg_keys)
        return (category == "shell" and "no-shell" in rules.templates) or (
            category == "code_execution" and "no-code-execution" in rules.templates)

    # -- review ---------------------------------------------------------------------------------
    async def resolve(self, tenant_id: str, check_id: str, decision: str, *, decided_by: str, actor: str,
                      reason: str | None, request_id: str | None) -> tuple[dict[str, Any], bool]:
        row, changed = await self.rt.store.decide_check(tenant_id, check_id, decision, decided_by=decided_by,
                                                        reason=reason)
        if changed:
            if self.rt.audit is not None:
                self.rt.audit.submit({
                    "id": uuid7_str(), "tenant_id": tenant_id, "ts": now_rfc3339(), "actor": actor,
                    "request_id": request_id, "action": "check.decided", "resource_type": "tool_check",
                    "resource_id": check_id, "outcome": "success",
                    "details": {"decision": decision, "decided_by": decided_by, "reason": reason,
                                "agent_id": row["agent_id"], "tool_name": row["tool_name"],
                                "risk_level": row["risk_level"]}}, {}, ((), 0))
            await self.publish(check_id)
        return row, changed

    async def resolve_timeout(self, row: dict[str, Any]) -> dict[str, Any]:
        resolved, _ = await self.resolve(row["tenant_id"], row["id"], row["timeout_decision"],
                                         decided_by="system:timeout", actor="system:timeout",
                                         reason="review timed out", request_id=None)
        return resolved

    async def publish(self, check_id: str) -> None:
        self.wake(check_id)
        if self.rt.redis is not None:
            try:
                await self.rt.redis.publish(CHECKS_CHANNEL, check_id)
            except Exception as exc:  # noqa: BLE001 - waiters re-read the store anyway
                log.warning("check wake-up publish failed: %s", exc.__class__.__name__)

    def wake(self, check_id: str) -> None:
        ev = self._waiters.pop(check_id, None)
        if ev is not None:
            ev.set()

    async def wait_decision(self, tenant_id: str, check_id: str, wait_s: float) -> dict[str, Any]:
        store = self.rt.store
        row = await store.get_check(tenant_id, check_id)
        deadline = time.monotonic() + wait_s
        poll = _POLL_S_REDIS if self.rt.redis is not None else _POLL_S_LOCAL
        while row["status"] == "pending":
            now = datetime.now(UTC)
            if row["expires_at"] <= now:
                return await self.resolve_timeout(row)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ev = self._waiters.get(check_id)
            if ev is None:
                ev = self._waiters[check_id] = asyncio.Event()
            step = min(left, poll, max(0.0, (row["expires_at"] - now).total_seconds()) + 0.01)
            try:
                await asyncio.wait_for(ev.wait(), timeout=step)
            except TimeoutError:
                pass
            row = await store.get_check(tenant_id, check_id)
        if row["status"] != "pending":
            self.wake(check_id)            # decided elsewhere without a wake-up: release other local waiters
        return row

    async def _sweep(self) -> None:
        """Resolve pending checks past their deadline (every worker may run it: resolution is atomic)."""
        while True:
            await asyncio.sleep(1.0)
            try:
                for tenant_id, check_id in await self.rt.store.expired_pending_checks():
                    row = await self.rt.store.get_check(tenant_id, check_id)
                    if row["status"] == "pending":
                        await self.resolve_timeout(row)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - store briefly down: try again next tick
                log.warning("check sweeper: %s", exc.__class__.__name__)

    async def _subscribe(self) -> None:
        while True:
            pubsub = self.rt.redis.pubsub()
            try:
                await pubsub.subscribe(CHECKS_CHANNEL)
                async for msg in pubsub.listen():
                    if msg.get("type") == "message":
                        data = msg["data"]
                        self.wake(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception as exc:  # noqa: BLE001 - Redis went away: waiters fall back to polling
                log.warning("check wake-up subscription lost: %s", exc.__class__.__name__)
                await asyncio.sleep(1.0)


def _decision_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"check_id": row["id"], "decision": row["decision"], "status": row["status"],
            "decided_by": row["decided_by"], "reason": row["decision_reason"], "decided_at": _iso(row["decided_at"]),
            "expires_at": _iso(row["expires_at"]), "timeout_decision": row["timeout_decision"],
            "risk_level": row["risk_level"], "tool_name": row["tool_name"], "agent_id": row["agent_id"]}


class CheckHandlers:
    """The aiohttp handlers; every error is an RFC 7807 problem."""

    def __init__(self, svc: CheckService) -> None:
        self.svc = svc
        from proxy import metrics

        self._metric = metrics.REQUESTS

    def _count(self, route: str, status: int) -> None:
        c = self.svc._counters.get((route, status))
        if c is None:
            c = self.svc._counters[(route, status)] = self._metric.labels(route=route, status=str(status))
        c.inc()

    def _ctx(self, request: web.Request, route: str) -> RequestContext:
        ctx = RequestContext(route, request.method, request.path, request.headers, b"", request.remote)
        assign_request_id(ctx)
        return ctx

    def _ok(self, ctx: RequestContext, data: Any, status: int = 200, pagination: dict[str, Any] | None = None
            ) -> web.Response:
        meta: dict[str, Any] = {"request_id": ctx.request_id, "timestamp": now_rfc3339(), "version": VERSION}
        if pagination is not None:
            meta["pagination"] = pagination
        self._count(ctx.route, status)
        headers = ctx.response_headers
        headers["X-Request-ID"] = ctx.request_id
        headers["Server-Timing"] = _server_timing(ctx)
        return web.Response(status=status, body=orjson.dumps({"data": data, "meta": meta, "errors": None}),
                            content_type="application/json", headers=headers)

    def _problem(self, ctx: RequestContext, err: StageError) -> web.Response:
        self._count(ctx.route, err.status)
        ctx.response_headers["Server-Timing"] = _server_timing(ctx)
        return problem_response(err, instance=ctx.path, request_id=ctx.request_id, openai=False,
                                headers=ctx.response_headers)

    async def _json(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise ValidationFailed("body: is not valid JSON", extra={"field": "body"}, reason="invalid_json") from None

    @staticmethod
    def _check_id(request: web.Request) -> str:
        cid = request.match_info["check_id"]
        if len(cid) != _UUID_LEN:
            raise NotFound("check not found", error_code="CHK-404", reason="not_found")
        return cid

    async def _get_row(self, tenant_id: str, check_id: str, wait_s: float = 0.0) -> dict[str, Any]:
        from admin_api.store import NotFoundError

        try:
            if wait_s > 0:
                return await self.svc.wait_decision(tenant_id, check_id, wait_s)
            row = await self.svc.rt.store.get_check(tenant_id, check_id)
        except NotFoundError:
            raise NotFound("check not found", error_code="CHK-404", reason="not_found") from None
        if row["status"] == "pending" and row["expires_at"] <= datetime.now(UTC):
            row = await self.svc.resolve_timeout(row)
        return row

    # -- routes ---------------------------------------------------------------------------------
    async def check(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx(request, "check")
        svc = self.svc
        try:
            principal, token_agent = svc.authenticate(ctx)
            svc.require(principal, "checks:write")
            await svc.rate_limit(ctx)
            body = await self._json(request)
            try:
                _check_body(body)
            except fastjsonschema.JsonSchemaValueException as exc:
                raise _invalid(exc) from None
            agent_id = token_agent or body.get("agent_id")
            if agent_id is None:
                raise ValidationFailed("agent_id: is required (or send X-Casemate-Agent-Token)",
                                       extra={"field": "agent_id"}, reason="invalid_request")
            if token_agent is not None and body.get("agent_id") not in (None, token_agent):
                raise Forbidden("agent_id differs from the agent token's agent.", error_code="AUTH-010",
                                reason="agent_mismatch")
            data, _ = await svc.run_check(principal, agent_id, body, ctx.request_id)
            return self._ok(ctx, data)
        except StageError as err:
            return self._problem(ctx, err)

    async def decision(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx(request, "check_decision")
        try:
            principal, _ = self.svc.authenticate(ctx)
            self.svc.require(principal, "checks:write", "checks:review")
            raw_wait = request.query.get("wait", "0")
            try:
                wait = float(raw_wait)
            except ValueError:
                wait = -1.0
            if not 0 <= wait <= MAX_WAIT_S:
                raise ValidationFailed(f"wait: must be a number of seconds between 0 and {MAX_WAIT_S:g}",
                                       extra={"field": "wait"}, reason="invalid_request")
            row = await self._get_row(principal.tenant_id, self._check_id(request), wait)
            return self._ok(ctx, _decision_view(row))
        except StageError as err:
            return self._problem(ctx, err)

    async def decide(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx(request, "check_review")
        try:
            principal, _ = self.svc.authenticate(ctx)
            if not self.svc.can_review(principal):
                raise Forbidden("Missing permission checks:review.", error_code="AUTH-003", reason="forbidden")
            body = await self._json(request)
            try:
                _decide_body(body)
            except fastjsonschema.JsonSchemaValueException as exc:
                raise _invalid(exc) from None
            check_id = self._check_id(request)
            row = await self._get_row(principal.tenant_id, check_id)
            if row["status"] != "pending":
                raise _conflict(f"The check is already decided ({row['decision']} by {row['decided_by']}).")
            actor = f"{principal.kind}:{principal.subject}"
            row, changed = await self.svc.resolve(principal.tenant_id, check_id, body["decision"],
                                                  decided_by=body.get("decided_by") or actor, actor=actor,
                                                  reason=body.get("reason"), request_id=ctx.request_id)
            if not changed:
                raise _conflict(f"The check is already decided ({row['decision']} by {row['decided_by']}).")
            return self._ok(ctx, _decision_view(row))
        except StageError as err:
            return self._problem(ctx, err)

    async def post_traces(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx(request, "traces")
        try:
            principal, token_agent = self.svc.authenticate(ctx)
            self.svc.require(principal, "traces:write")
            await self.svc.rate_limit(ctx)
            body = await self._json(request)
            try:
                _traces_body(body)
            except fastjsonschema.JsonSchemaValueException as exc:
                raise _invalid(exc) from None
            items = body["traces"] if "traces" in body else [body]
            ids = []
            assert self.svc.traces is not None
            for i, t in enumerate(items):
                agent_id = token_agent or t.get("agent_id")
                if agent_id is None:
                    raise ValidationFailed(f"traces.{i}.agent_id: is required", extra={"field": "agent_id"},
                                           reason="invalid_request")
                ts = None
                if "ts" in t:
                    try:
                        ts = datetime.fromisoformat(t["ts"].replace("Z", "+00:00"))
                    except ValueError:
                        raise ValidationFailed(f"traces.{i}.ts: is not an RFC 3339 time",
                                               extra={"field": "ts"}, reason="invalid_request") from None
                    if ts.tzinfo is None:
                        ts = ts.replace(tzinfo=UTC)
                ids.append(uuid7_str())
                self.svc.traces.submit({
                    "id": ids[-1], "tenant_id": principal.tenant_id, "agent_id": agent_id,
                    "session_id": t.get("session_id"), "tool_name": t["tool_name"], "arguments": t.get("arguments"),
                    "result": t.get("result"), "decision": t.get("decision"),
                    "blocked": bool(t.get("blocked", t.get("decision") == "block")), "error": t.get("error"),
                    "duration_ms": t.get("duration_ms"), "check_id": t.get("check_id"),
                    "ts": ts or datetime.now(UTC)})
            return self._ok(ctx, {"accepted": len(ids), "ids": ids}, status=201)
        except StageError as err:
            return self._problem(ctx, err)

    def _list_query(self, request: web.Request, allowed: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, raw in request.query.items():
            kind = allowed.get(name)
            if kind is None:
                raise ValidationFailed(f"{name}: is not an accepted query parameter", extra={"field": name},
                                       reason="invalid_request")
            try:
                if kind == "int":
                    v: Any = int(raw)
                    if not 1 <= v <= 200:
                        raise ValueError
                elif kind == "score":
                    v = float(raw)
                    if not 0 <= v <= 1:
                        raise ValueError
                elif kind == "bool":
                    v = {"true": True, "false": False}[raw.lower()]
                elif kind == "time":
                    v = datetime.fromisoformat(raw.replace("Z", "+00:00"))
                    if v.tzinfo is None:
                        v = v.replace(tzinfo=UTC)
                elif kind == "decision":
                    if raw not in ("allow", "block", "pending"):
                        raise ValueError
                    v = raw
                elif kind == "cursor":
                    v = decode_cursor(raw)
                else:
                    v = raw
            except (ValueError, KeyError):
                raise ValidationFailed(f"{name}: is not valid", extra={"field": name},
                                       reason="invalid_request") from None
            out[name] = v
        return out

    def _page(self, ctx: RequestContext, page: Any, limit: int) -> web.Response:
        return self._ok(ctx, _jsonable(page.items), pagination={
            "limit": limit, "has_more": page.has_more, "total_count": page.total_count,
            "next_cursor": encode_cursor(page.next_after) if page.next_after else None})

    async def get_traces(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx(request, "traces_list")
        try:
            principal, token_agent = self.svc.authenticate(ctx)
            self.svc.require(principal, "traces:read", "traces:write", "checks:review")
            q = self._list_query(request, TRACES_QUERY)
            agent_id = token_agent or q.get("agent_id")
            limit = q.get("limit", 50)
            page = await self.svc.rt.store.list_traces(principal.tenant_id, agent_id=agent_id, since=q.get("from"),
                                                       until=q.get("to"), blocked=q.get("blocked"), limit=limit,
                                                       after=q.get("cursor"))
            return self._page(ctx, page, limit)
        except StageError as err:
            return self._problem(ctx, err)

    async def get_anomalies(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx(request, "anomalies")
        try:
            principal, token_agent = self.svc.authenticate(ctx)
            self.svc.require(principal, "traces:read", "traces:write", "checks:review")
            q = self._list_query(request, ANOMALIES_QUERY)
            limit = q.get("limit", 50)
            page = await self.svc.rt.store.list_anomalies(
                principal.tenant_id, min_score=q.get("min_score"), agent_id=token_agent or q.get("agent_id"),
                decision=q.get("decision"), limit=limit, after=q.get("cursor"))
            return self._page(ctx, page, limit)
        except StageError as err:
            return self._problem(ctx, err)


CHECK_SERVICE = web.AppKey("check_service", CheckService)


def mcp_upstream_url(rt: Any) -> str | None:
    """The upstream MCP server the firewall fronts: setting `mcp_upstream_url`, else CASEMATE_MCP_UPSTREAM_URL."""
    return getattr(rt.settings, "mcp_upstream_url", None) or os.environ.get("CASEMATE_MCP_UPSTREAM_URL") or None


def register_check_routes(app: web.Application, rt: Any) -> CheckService:
    """Add the check, review, trace and anomaly routes, and `/mcp` when an upstream MCP server is configured."""
    from proxy.mcp_firewall import McpFirewall

    svc = CheckService(rt)
    upstream = mcp_upstream_url(rt)
    firewall = McpFirewall(svc, upstream) if upstream else None
    if firewall is not None:
        for method in ("POST", "GET", "DELETE"):
            app.router.add_route(method, "/mcp", firewall.handle)
    h = CheckHandlers(svc)
    app[CHECK_SERVICE] = svc
    app.router.add_post("/api/v1/check", h.check)
    app.router.add_get("/api/v1/check/{check_id}/decision", h.decision)
    app.router.add_patch("/api/v1/check/{check_id}", h.decide)
    app.router.add_post("/api/v1/traces", h.post_traces)
    app.router.add_get("/api/v1/traces", h.get_traces)
    app.router.add_get("/api/v1/anomalies", h.get_anomalies)

    async def _start(_app: web.Application) -> None:
        await svc.start()

    async def _stop(_app: web.Application) -> None:
        if firewall is not None:
            await firewall.close()
        await svc.close()

    app.on_startup.append(_start)
    app.on_cleanup.insert(0, _stop)
    return svc
