"""What happened: the audit trail, the gateway request log and costs."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from admin_api.context import Ctx
from admin_api.http import bad_request, not_found
from admin_api.routing import RouteTable
from admin_api.schemas import AUDIT_EVENT, GATEWAY_REQUEST, TS, USAGE, array

routes = RouteTable()

_RANGE = {"from": {**TS, "description": "Inclusive lower bound (RFC 3339)."},
          "to": {**TS, "description": "Exclusive upper bound (RFC 3339)."}}
AUDIT_QUERY: dict[str, dict[str, Any]] = {"action": {"type": "string", "maxLength": 100}, "resource_type": {"type": "string", "maxLength": 100},
               "resource_id": {"type": "string", "maxLength": 200}, "actor": {"type": "string", "maxLength": 200},
               **_RANGE}
REQUESTS_QUERY: dict[str, dict[str, Any]] = {"key_id": {"type": "string", "maxLength": 64}, "model": {"type": "string", "maxLength": 200},
                  "blocked": {"type": "boolean"}, **_RANGE}
COSTS_QUERY = {"days": {"type": "integer", "minimum": 1, "maximum": 366, "default": 30},
               "top": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}}


def _range(ctx: Ctx) -> tuple[datetime | None, datetime | None]:
    out: list[datetime | None] = []
    for name in ("from", "to"):
        raw = ctx.query.get(name)
        if raw is None:
            out.append(None)
            continue
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            raise bad_request(f"{name}: needs a timezone (e.g. Z)", field=name)
        out.append(value)
    return out[0], out[1]


@routes.route("GET", "/api/v1/audit-events", summary="The organization's audit trail, newest first",
              tag="audit", permission="audit:read", paginated=True, query=AUDIT_QUERY, response=array(AUDIT_EVENT))
async def list_audit_events(ctx: Ctx) -> Any:
    since, until = _range(ctx)
    q = ctx.query
    return await ctx.store.list_audit_events(
        ctx.tenant_id, action=q.get("action"), resource_type=q.get("resource_type"),
        resource_id=q.get("resource_id"), actor=q.get("actor"), since=since, until=until,
        limit=ctx.limit, after=ctx.after,
    )


@routes.route("GET", "/api/v1/requests", summary="Gateway requests with their security results",
              tag="requests", permission="requests:read", paginated=True, query=REQUESTS_QUERY,
              response=array(GATEWAY_REQUEST))
async def list_requests(ctx: Ctx) -> Any:
    since, until = _range(ctx)
    q = ctx.query
    return await ctx.store.list_gateway_requests(
        ctx.tenant_id, key_id=q.get("key_id"), model=q.get("model"), blocked=q.get("blocked"), since=since,
        until=until, limit=ctx.limit, after=ctx.after,
    )


@routes.route("GET", "/api/v1/requests/{request_id}", summary="One gateway request", tag="requests",
              permission="requests:read", response=GATEWAY_REQUEST)
async def get_request(ctx: Ctx) -> Any:
    rid = ctx.param("request_id")
    row = await ctx.store.get_gateway_request(ctx.tenant_id, rid) if len(rid) <= 64 else None
    if row is None:
        raise not_found("request")
    return row


@routes.route("GET", "/api/v1/costs", summary="Cost and usage summary with breakdowns by day, model and key",
              tag="requests", permission="requests:read", query=COSTS_QUERY, response=USAGE)
async def costs(ctx: Ctx) -> Any:
    return await ctx.store.usage_stats(ctx.tenant_id, days=ctx.query["days"], top=ctx.query["top"])
