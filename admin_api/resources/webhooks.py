"""Webhooks: endpoints (secret shown once), deliveries, test sends and redelivery.

Reads need `audit:read` (deliveries carry audit data); changes need `tenants:write`.
"""
from __future__ import annotations

from typing import Any

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.dispatcher import DISPATCHER, EVENT_TYPES, deliver
from admin_api.http import unprocessable
from admin_api.ids import new_id
from admin_api.resources.common import changed_fields, path_id
from admin_api.routing import Result, RouteTable
from admin_api.schemas import ID, TS, array, obj
from admin_api.store.codec import isoformat, utcnow
from admin_api.webhooks import (
    DestinationRefused,
    check_url,
    new_secret,
    parse_networks,
    resolve_checked,
)

routes = RouteTable()

URL = {"type": "string", "minLength": 8, "maxLength": 2000, "pattern": "^https?://"}
TYPES = {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}, "maxItems": 50, "uniqueItems": True,
         "description": "Event types to send; empty: every type except opt-in ones (gateway.request.completed)."}
DESCRIPTION = {"type": "string", "maxLength": 500}
STATUS = {"type": "string", "enum": ["active", "disabled"]}
NULLABLE_TS = {"anyOf": [TS, {"type": "null"}]}
WEBHOOK = obj({"id": ID, "tenant_id": ID, "url": {"type": "string"}, "description": {"type": "string"},
               "event_types": array({"type": "string"}), "status": STATUS, "created_by": {"type": ["string", "null"]},
               "created_at": TS, "updated_at": TS})
WEBHOOK_WITH_SECRET = {**WEBHOOK, "properties": {**WEBHOOK["properties"], "secret": {
    "type": "string", "description": "Standard Webhooks signing secret (whsec_...); shown only now."}}}
DELIVERY = obj({"id": ID, "webhook_id": ID, "event_id": {"type": "string"}, "event_type": {"type": "string"},
                "status": {"type": "string", "enum": ["pending", "succeeded", "dead"]},
                "attempts": {"type": "integer"}, "next_attempt_at": NULLABLE_TS,
                "response_code": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]},
                "latency_ms": {"type": ["number", "null"]}, "created_at": TS, "updated_at": TS}, closed=False)
CREATE = obj({"url": URL, "description": DESCRIPTION, "event_types": TYPES}, ("url",))
UPDATE = obj({"url": URL, "description": DESCRIPTION, "event_types": TYPES, "status": STATUS}, min_properties=1)


async def _checked_url(ctx: Ctx, url: str) -> str:
    try:
        host, port = check_url(url)
        await resolve_checked(host, port, parse_networks(ctx.settings.webhook_allow_networks))
    except DestinationRefused as exc:
        raise unprocessable(f"url: {exc}") from None
    return url


def _hook_id(ctx: Ctx) -> str:
    return path_id(ctx, "webhook_id", "webhook")


def _public(delivery: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in delivery.items() if k not in ("payload", "tenant_id")}


@routes.route("GET", "/api/v1/webhooks/event-types", summary="Event types a webhook can receive", tag="webhooks",
              permission="audit:read", response=array({"type": "string"}))
async def webhook_event_types(ctx: Ctx) -> Any:
    return list(EVENT_TYPES)


@routes.route("POST", "/api/v1/webhooks", summary="Create a webhook (the signing secret is shown once)",
              tag="webhooks", permission="tenants:write", body=CREATE, response=WEBHOOK_WITH_SECRET, status=201)
async def create_webhook(ctx: Ctx) -> Any:
    url = await _checked_url(ctx, ctx.body["url"])
    secret = new_secret()
    hook = await ctx.store.create_webhook(ctx.tenant_id, url=url, secret=secret,
                                          description=ctx.body.get("description", ""),
                                          event_types=ctx.body.get("event_types"), created_by=ctx.me.actor)
    await audit(ctx, "webhook.create", "webhook", hook["id"], after=hook)
    return Result({**hook, "secret": secret}, status=201)


@routes.route("GET", "/api/v1/webhooks", summary="List webhooks (secrets are never listed)", tag="webhooks",
              permission="audit:read", paginated=True, response=array(WEBHOOK))
async def list_webhooks(ctx: Ctx) -> Any:
    return await ctx.store.list_webhooks(ctx.tenant_id, limit=ctx.limit, after=ctx.after)


@routes.route("GET", "/api/v1/webhooks/{webhook_id}", summary="One webhook", tag="webhooks",
              permission="audit:read", response=WEBHOOK)
async def get_webhook(ctx: Ctx) -> Any:
    return await ctx.store.get_webhook(ctx.tenant_id, _hook_id(ctx))


@routes.route("PATCH", "/api/v1/webhooks/{webhook_id}", summary="Change a webhook", tag="webhooks",
              permission="tenants:write", body=UPDATE, response=WEBHOOK)
async def update_webhook(ctx: Ctx) -> Any:
    wid = _hook_id(ctx)
    before = await ctx.store.get_webhook(ctx.tenant_id, wid)
    fields = changed_fields(ctx.body, ("url", "description", "event_types", "status"))
    if "url" in fields:
        await _checked_url(ctx, fields["url"])
    after = await ctx.store.update_webhook(ctx.tenant_id, wid, **fields)
    await audit(ctx, "webhook.update", "webhook", wid, before=before, after=after)
    return after


@routes.route("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret", summary="Replace the signing secret",
              tag="webhooks", permission="tenants:write", response=WEBHOOK_WITH_SECRET)
async def rotate_webhook_secret(ctx: Ctx) -> Any:
    wid = _hook_id(ctx)
    secret = new_secret()
    hook = await ctx.store.update_webhook(ctx.tenant_id, wid, secret=secret)
    await audit(ctx, "webhook.rotate_secret", "webhook", wid)
    return {**hook, "secret": secret}


@routes.route("DELETE", "/api/v1/webhooks/{webhook_id}", summary="Delete a webhook and its deliveries",
              tag="webhooks", permission="tenants:write", status=204)
async def delete_webhook(ctx: Ctx) -> Any:
    wid = _hook_id(ctx)
    before = await ctx.store.get_webhook(ctx.tenant_id, wid)
    await ctx.store.delete_webhook(ctx.tenant_id, wid)
    await audit(ctx, "webhook.delete", "webhook", wid, before=before)
    return Result(status=204)


@routes.route("GET", "/api/v1/webhooks/{webhook_id}/deliveries", tag="webhooks", permission="audit:read",
              summary="Deliveries: status, attempts, response code, latency", paginated=True,
              query={"status": {"type": "string", "enum": ["pending", "succeeded", "dead"]}}, response=array(DELIVERY))
async def list_deliveries(ctx: Ctx) -> Any:
    page = await ctx.store.list_deliveries(ctx.tenant_id, _hook_id(ctx), status=ctx.query.get("status"),
                                           limit=ctx.limit, after=ctx.after)
    return page


@routes.route("POST", "/api/v1/webhooks/{webhook_id}/test", summary="Send a `webhook.test` event now",
              tag="webhooks", permission="tenants:write", response=DELIVERY)
async def test_webhook(ctx: Ctx) -> Any:
    wid = _hook_id(ctx)
    await ctx.store.get_webhook(ctx.tenant_id, wid)
    event_id = new_id()
    payload = {"type": "webhook.test", "timestamp": isoformat(utcnow()),
               "data": {"id": event_id, "tenant_id": ctx.tenant_id, "actor": ctx.me.actor,
                        "message": "Casemate webhook test"}}
    await ctx.store.enqueue_deliveries([(ctx.tenant_id, wid, event_id, "webhook.test", payload)])
    page = await ctx.store.list_deliveries(ctx.tenant_id, wid, limit=1)
    delivery = await ctx.store.get_delivery(ctx.tenant_id, wid, page.items[0]["id"])
    return _public(await deliver(ctx.store, ctx.settings, delivery))


@routes.route("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", tag="webhooks",
              permission="tenants:write", summary="Queue a delivery again (dead-lettered ones included)",
              response=DELIVERY, status=202)
async def redeliver(ctx: Ctx) -> Any:
    wid = _hook_id(ctx)
    did = path_id(ctx, "delivery_id", "delivery")
    delivery = await ctx.store.redeliver(ctx.tenant_id, wid, did)
    await audit(ctx, "webhook.redeliver", "webhook_delivery", did)
    dispatcher = ctx.request.app.get(DISPATCHER)
    if dispatcher is not None:
        dispatcher.wake_delivery()
    return Result(_public(delivery), status=202)
