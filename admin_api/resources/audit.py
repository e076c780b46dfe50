"""The audit trail: search, one event, its proof bundle, streamed exports, retention and purges.

`GET /api/v1/audit-log` and `GET /api/v1/audit/events` are the same listing (the older
`GET /api/v1/audit-events` in activity.py remains as an alias without `q`).
"""
from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.http import REQUEST_ID, bad_request, dumps, not_found
from admin_api.resources.common import path_id
from admin_api.routing import RouteTable
from admin_api.schemas import AUDIT_EVENT, JSON_OBJECT, TS, array, obj
from admin_api.store import Store
from admin_api.store.evidence import AuditFilter
from admin_api.store.tlog import log_id_for
from admin_api.transparency import TLOG

routes = RouteTable()

FILTER_QUERY: dict[str, dict[str, Any]] = {
    "action": {"type": "string", "maxLength": 100, "description": "Exact action, e.g. `key.revoke`."},
    "resource_type": {"type": "string", "maxLength": 100},
    "resource_id": {"type": "string", "maxLength": 128},
    "actor": {"type": "string", "maxLength": 128, "description": "Exact actor, e.g. `user:<id>`."},
    "q": {"type": "string", "minLength": 1, "maxLength": 100,
          "description": "Case-insensitive substring of action, resource, actor, request id or details."},
    "from": {**TS, "description": "Inclusive lower bound (RFC 3339)."},
    "to": {**TS, "description": "Exclusive upper bound (RFC 3339)."},
}
EVENT_WITH_LEAF = {**AUDIT_EVENT, "properties": {**AUDIT_EVENT["properties"],
                                                 "leaf_index": {"type": ["integer", "null"]}}}
DAYS = {"type": ["integer", "null"], "minimum": 1, "maximum": 36500}
RETENTION = obj({"tenant_id": {"type": "string"}, "audit_days": DAYS, "request_log_days": DAYS,
                 "updated_by": {"type": ["string", "null"]}, "updated_at": {"type": ["string", "null"]}})
RETENTION_BODY = obj({"audit_days": DAYS, "request_log_days": DAYS}, ("audit_days", "request_log_days"))
PURGE = obj({"audit_events": {"type": "integer"}, "gateway_requests": {"type": "integer"},
             "audit_before": {"type": ["string", "null"]}, "requests_before": {"type": ["string", "null"]}})
PROOF_BUNDLE = obj({"event": EVENT_WITH_LEAF, "leaf_index": {"type": "integer"},
                    "proof": array({"type": "string"}), "sth": JSON_OBJECT}, closed=False)
CSV_COLUMNS = ("id", "ts", "tenant_id", "actor", "action", "resource_type", "resource_id", "outcome", "request_id",
               "details")
_FLUSH_BYTES = 64 * 1024
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _when(ctx: Ctx, name: str) -> datetime | None:
    raw = ctx.query.get(name)
    if raw is None:
        return None
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        raise bad_request(f"{name}: needs a timezone (e.g. Z)", field=name)
    return value


def audit_filter(ctx: Ctx) -> AuditFilter:
    q = ctx.query
    return AuditFilter(action=q.get("action"), resource_type=q.get("resource_type"),
                       resource_id=q.get("resource_id"), actor=q.get("actor"), q=q.get("q"),
                       since=_when(ctx, "from"), until=_when(ctx, "to"))


async def _list(ctx: Ctx) -> Any:
    return await ctx.store.search_audit_events(ctx.tenant_id, audit_filter(ctx), limit=ctx.limit, after=ctx.after)


@routes.route("GET", "/api/v1/audit-log", summary="The organization's audit trail, newest first", tag="audit",
              permission="audit:read", paginated=True, query=FILTER_QUERY, response=array(AUDIT_EVENT))
async def audit_log(ctx: Ctx) -> Any:
    return await _list(ctx)


@routes.route("GET", "/api/v1/audit/events", summary="Audit events, newest first (same as /audit-log)",
              tag="audit", permission="audit:read", paginated=True, query=FILTER_QUERY, response=array(AUDIT_EVENT))
async def list_events(ctx: Ctx) -> Any:
    return await _list(ctx)


async def _event(ctx: Ctx) -> dict[str, Any]:
    event = await ctx.store.get_audit_event(ctx.tenant_id, path_id(ctx, "event_id", "audit event"))
    if event is None:
        raise not_found("audit event")
    return event


@routes.route("GET", "/api/v1/audit/events/{event_id}", summary="One audit event with its transparency-log leaf",
              tag="audit", permission="audit:read", response=EVENT_WITH_LEAF)
async def get_event(ctx: Ctx) -> Any:
    return await _event(ctx)


@routes.route("GET", "/api/v1/audit/events/{event_id}/proof", tag="audit", permission="audit:read",
              summary="Everything `casemate-verify event` needs: the event, its inclusion proof and a signed head",
              response=PROOF_BUNDLE)
async def event_proof(ctx: Ctx) -> Any:
    event = await _event(ctx)
    if event["leaf_index"] is None:
        raise not_found("transparency-log leaf")
    tlog = ctx.request.app[TLOG]
    log_id = log_id_for(ctx.tenant_id)
    head = await tlog.head(log_id)
    proof = await tlog.inclusion(log_id, event["leaf_index"], head.tree_size)
    return {"event": event, "leaf_index": event["leaf_index"], "proof": [p.hex() for p in proof],
            "sth": head.to_json()}


async def _stream(ctx: Ctx, content_type: str, filename: str, head: bytes,
                  render: Any) -> web.StreamResponse:
    store: Store = ctx.store
    resp = web.StreamResponse(headers={
        "Content-Type": content_type, "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Request-ID": ctx.request.get(REQUEST_ID, ""), "Cache-Control": "no-store",
    })
    await resp.prepare(ctx.request)
    buf = bytearray(head)
    async for event in store.iter_audit_events(ctx.tenant_id, audit_filter(ctx)):
        buf += render(event)
        if len(buf) >= _FLUSH_BYTES:
            await resp.write(bytes(buf))
            buf.clear()
    if buf:
        await resp.write(bytes(buf))
    await resp.write_eof()
    return resp


def _jsonl(event: dict[str, Any]) -> bytes:
    return dumps(event) + b"\n"


def _neutralise_formula(value: str) -> str:
    """OWASP CSV injection: a cell a spreadsheet would read as a formula gets a leading single quote."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _csv_line(values: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().encode()


def _csv(event: dict[str, Any]) -> bytes:
    row = {**event, "ts": orjson.loads(dumps(event["ts"])), "details": orjson.dumps(event["details"]).decode()}
    return _csv_line(["" if row[c] is None else _neutralise_formula(str(row[c])) for c in CSV_COLUMNS])


@routes.route("GET", "/api/v1/audit/export/jsonl", summary="Export matching audit events as JSON Lines (streamed)",
              tag="audit", permission="audit:read", query=FILTER_QUERY, envelope=False,
              media_type="application/x-ndjson", response={"type": "string"})
async def export_jsonl(ctx: Ctx) -> Any:
    return await _stream(ctx, "application/x-ndjson", "audit-events.jsonl", b"", _jsonl)


@routes.route("GET", "/api/v1/audit/export/csv",
              summary="Export matching audit events as CSV (streamed, formula cells neutralised)",
              tag="audit", permission="audit:read", query=FILTER_QUERY, envelope=False,
              media_type="text/csv", response={"type": "string"},
              description="Columns: " + ", ".join(CSV_COLUMNS) + "; `details` is a JSON object; empty cells are null. "
                          "A cell that starts with `=`, `+`, `-`, `@`, tab or carriage return is prefixed with a "
                          "single quote (OWASP CSV injection), so a spreadsheet shows it as text instead of "
                          "running it as a formula; the JSON Lines export carries the exact values.")
async def export_csv(ctx: Ctx) -> Any:
    return await _stream(ctx, "text/csv; charset=utf-8", "audit-events.csv", _csv_line(list(CSV_COLUMNS)), _csv)


# ---- retention ----------------------------------------------------------------------------------


@routes.route("GET", "/api/v1/audit/retention", summary="How long audit events and request-log rows are kept",
              tag="audit", permission="audit:read", response=RETENTION)
async def get_retention(ctx: Ctx) -> Any:
    return await ctx.store.get_retention(ctx.tenant_id)


@routes.route("PUT", "/api/v1/audit/retention", summary="Set the retention policy (null keeps forever)",
              tag="audit", permission="tenants:write", body=RETENTION_BODY, response=RETENTION)
async def set_retention(ctx: Ctx) -> Any:
    before = await ctx.store.get_retention(ctx.tenant_id)
    after = await ctx.store.set_retention(ctx.tenant_id, audit_days=ctx.body["audit_days"],
                                          request_log_days=ctx.body["request_log_days"], updated_by=ctx.me.actor)
    await audit(ctx, "retention.update", "retention", ctx.tenant_id, before=before, after=after)
    return after


async def purge_tenant(store: Store, tenant_id: str, actor: str, request_id: str | None = None) -> dict[str, Any]:
    """Apply the tenant's retention policy now and leave an audit event saying what went."""
    result = await store.purge_expired(tenant_id)
    await store.write_audit_events([{
        "tenant_id": tenant_id, "actor": actor, "action": "retention.purge", "resource_type": "retention",
        "resource_id": tenant_id, "outcome": "success", "request_id": request_id,
        "details": orjson.loads(dumps(result)),
    }])
    return result


@routes.route("POST", "/api/v1/audit/retention/purge", summary="Apply the retention policy now",
              tag="audit", permission="tenants:write", response=PURGE,
              description="Deletes what the policy no longer keeps; transparency-log leaves stay (marked purged). "
                          "The purge itself is recorded as a `retention.purge` audit event.")
async def purge_now(ctx: Ctx) -> Any:
    return await purge_tenant(ctx.store, ctx.tenant_id, ctx.me.actor, ctx.request_id)
