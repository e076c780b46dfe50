"""Stage 14: one structured audit event per request (blocked ones too), off the hot path."""
from __future__ import annotations

from datetime import datetime, timezone
from time import perf_counter
from typing import Any, Callable, Protocol

from pipeline.context import RequestContext
from pipeline.ids import uuid7_str


class AuditSink(Protocol):
    def submit(self, event: dict[str, Any] | None, request_row: dict[str, Any],
               usage: tuple[tuple[str, ...], int]) -> None: ...


CostFn = Callable[..., float]   # (provider, model, prompt_tokens, completion_tokens, tenant_id=) -> USD


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditStage:
    name = "audit"
    phase = "finally"
    optional = False

    def __init__(self, sink: AuditSink, cost: CostFn, on_finish: Callable[[RequestContext], None] | None = None,
                 *, completed_events: bool = False) -> None:
        self._sink = sink
        self._cost = cost
        self._on_finish = on_finish
        self._completed_events = completed_events   # opt-in: an audit event (and webhook) per completed request

    def __call__(self, ctx: RequestContext) -> None:
        p = ctx.principal
        if ctx.prompt_tokens or ctx.completion_tokens:
            ctx.cost_usd = self._cost(ctx.provider, ctx.upstream_model or ctx.model, ctx.prompt_tokens,
                                      ctx.completion_tokens, tenant_id=p.tenant_id if p is not None else None)
        err = ctx.error
        blocked = err is not None and ctx.outcome == "blocked"
        sec = ctx.security.as_dict(ctx.pipeline_ms)
        tenant_id = p.tenant_id if p is not None else None
        action = "gateway.request.blocked" if blocked else "gateway.request.completed"
        # Every request gets a request-log row; refused ones also get an audit event (the security
        # trail), so the common path costs one row.
        event = None if err is None and not self._completed_events else {
            "id": uuid7_str(), "tenant_id": tenant_id, "ts": rfc3339(ctx.ts),
            "actor": f"{p.kind}:{p.subject}" if p else "anonymous", "request_id": ctx.request_id,
            "action": action, "resource_type": "gateway_request", "resource_id": ctx.request_id,
            "outcome": ctx.outcome,
            "details": {"key_prefix": p.key_prefix if p else None, "ip": ctx.remote,
                        "route": ctx.route, "model": ctx.model, "provider": ctx.provider, "status": ctx.status,
                        "error_code": err.error_code if err else None, "reason": err.reason if err else None,
                        "stream": ctx.stream, "cache_hit": ctx.cache_hit, "security": sec,
                        "policy": ctx.policy.name if ctx.policy else None},
        }
        row = {
            "id": ctx.request_id, "tenant_id": tenant_id, "key_id": p.subject if p and p.kind == "api_key" else None,
            "ts": ctx.ts, "route": ctx.route, "model": ctx.model, "provider": ctx.provider, "status": ctx.status,
            "blocked": blocked, "reason": err.reason if err else None,
            "prompt_tokens": ctx.prompt_tokens, "completion_tokens": ctx.completion_tokens,
            "cost_usd": ctx.cost_usd, "latency_ms": round((perf_counter() - ctx.started) * 1000.0, 3),
            "upstream_ms": round(ctx.upstream_ms, 3), "cache_hit": ctx.cache_hit, "security": sec,
        }
        keys = ("t:" + p.tenant_id, "k:" + p.subject) if p is not None else ()
        self._sink.submit(event, row, (keys, ctx.prompt_tokens + ctx.completion_tokens))
        if self._on_finish is not None:
            self._on_finish(ctx)
