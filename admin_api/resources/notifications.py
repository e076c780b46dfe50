"""Notification integrations (email, Slack), topic subscriptions and signed unsubscribes.

Reads need `audit:read`, changes `tenants:write`. Secrets (SMTP password, Slack webhook URL) are
write-only: responses say `has_secret` and, for Slack, only the webhook's host.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.dispatcher import EVENT_TYPES, NOTIFIER
from admin_api.http import bad_request, not_found, unprocessable
from admin_api.notify import CHANNELS
from admin_api.routing import Result, RouteTable
from admin_api.schemas import TS, array, obj
from admin_api.webhooks import (
    DestinationRefused,
    check_url,
    parse_networks,
    resolve_checked,
)

routes = RouteTable()

EMAIL = {"type": "string", "minLength": 3, "maxLength": 320, "pattern": "^[^@\\s]+@[^@\\s]+$"}
EMAIL_BODY = obj({
    "host": {"type": "string", "minLength": 1, "maxLength": 253}, "port": {"type": "integer", "minimum": 1,
                                                                          "maximum": 65535},
    "security": {"type": "string", "enum": ["starttls", "tls", "none"]}, "from": EMAIL,
    "to": {"type": "array", "items": EMAIL, "minItems": 1, "maxItems": 50, "uniqueItems": True},
    "username": {"type": "string", "maxLength": 320}, "password": {"type": "string", "maxLength": 1024},
    "enabled": {"type": "boolean"},
}, ("host", "from", "to"))
SLACK_BODY = obj({"webhook_url": {"type": "string", "minLength": 8, "maxLength": 2000, "pattern": "^https?://"},
                  "enabled": {"type": "boolean"}})
INTEGRATION = obj({"channel": {"type": "string", "enum": list(CHANNELS)}, "config": {"type": "object"},
                   "enabled": {"type": "boolean"}, "has_secret": {"type": "boolean"}, "updated_at": TS})
TOPIC_CHANNELS = {"type": "array", "items": {"type": "string", "enum": list(CHANNELS)}, "minItems": 1,
                  "maxItems": 2, "uniqueItems": True}
SUBSCRIPTION = obj({"topic": {"type": "string"}, "channels": array({"type": "string"}),
                    "min_interval_s": {"type": "number"}, "updated_at": TS})
SUBSCRIPTION_BODY = obj({"channels": TOPIC_CHANNELS, "min_interval_s": {
    "type": "number", "minimum": 0, "maximum": 86400,
    "description": "At most one message per topic and channel in this many seconds; later events form a digest."}},
    ("channels",))
TOKEN = {"type": "string", "minLength": 8, "maxLength": 300}
UNSUBSCRIBE_BODY = obj({"token": TOKEN})


def _channel(ctx: Ctx) -> str:
    channel = ctx.param("channel")
    if channel not in CHANNELS:
        raise not_found("integration")
    return channel


def _topic(ctx: Ctx) -> str:
    topic = ctx.param("topic")
    if topic not in EVENT_TYPES:
        raise not_found("topic")
    return topic


async def _destination(ctx: Ctx, host: str, port: int) -> None:
    try:
        await resolve_checked(host, port, parse_networks(ctx.settings.webhook_allow_networks))
    except DestinationRefused as exc:
        raise unprocessable(str(exc)) from None


@routes.route("GET", "/api/v1/notifications/integrations", summary="Notification channels of the organization",
              tag="notifications", permission="audit:read", response=array(INTEGRATION))
async def list_integrations(ctx: Ctx) -> Any:
    return await ctx.store.list_integrations(ctx.tenant_id)


@routes.route("GET", "/api/v1/notifications/integrations/{channel}", summary="One channel (secrets never shown)",
              tag="notifications", permission="audit:read", response=INTEGRATION)
async def get_integration(ctx: Ctx) -> Any:
    return await ctx.store.get_integration(ctx.tenant_id, _channel(ctx))


@routes.route("PUT", "/api/v1/notifications/integrations/{channel}", tag="notifications",
              summary="Configure email (SMTP) or Slack (incoming webhook)", permission="tenants:write",
              body={"oneOf": [EMAIL_BODY, SLACK_BODY]}, response=INTEGRATION,
              description="email: host, port, security, from, to, username, password; slack: webhook_url. "
                          "Omitting the password keeps the stored one.")
async def put_integration(ctx: Ctx) -> Any:
    channel, body = _channel(ctx), ctx.body
    enabled = bool(body.get("enabled", True))
    if channel == "slack":
        if "webhook_url" not in body:
            raise bad_request("webhook_url: is required", field="webhook_url")
        try:
            host, port = check_url(body["webhook_url"])
        except DestinationRefused as exc:
            raise unprocessable(str(exc)) from None
        await _destination(ctx, host, port)
        config: dict[str, Any] = {"webhook_host": urlsplit(body["webhook_url"]).hostname}
        secret, keep = body["webhook_url"], False
    else:
        if "host" not in body:
            raise bad_request("host: is required", field="host")
        config = {"host": body["host"], "port": body.get("port", 587), "security": body.get("security", "starttls"),
                  "from": body["from"], "to": body["to"], "username": body.get("username", "")}
        await _destination(ctx, config["host"], config["port"])
        secret, keep = body.get("password"), "password" not in body
    result = await ctx.store.put_integration(ctx.tenant_id, channel, config=config, secret=secret, keep_secret=keep,
                                             enabled=enabled)
    await audit(ctx, "notification.integration.update", "notification_integration", channel, after=result)
    return result


@routes.route("DELETE", "/api/v1/notifications/integrations/{channel}", summary="Remove a channel",
              tag="notifications", permission="tenants:write", status=204)
async def delete_integration(ctx: Ctx) -> Any:
    channel = _channel(ctx)
    await ctx.store.delete_integration(ctx.tenant_id, channel)
    await audit(ctx, "notification.integration.delete", "notification_integration", channel)
    return Result(status=204)


@routes.route("POST", "/api/v1/notifications/integrations/{channel}/test", summary="Send a test message now",
              tag="notifications", permission="tenants:write", response=obj({"sent": {"type": "boolean"}}))
async def test_integration(ctx: Ctx) -> Any:
    channel = _channel(ctx)
    await ctx.store.get_integration(ctx.tenant_id, channel)
    event = {"type": "notification.test", "timestamp": None,
             "data": {"action": "notification.test", "actor": ctx.me.actor, "tenant_id": ctx.tenant_id}}
    try:
        await ctx.request.app[NOTIFIER].deliver(ctx.tenant_id, "notification.test", channel, [event])
    except Exception as exc:  # noqa: BLE001 - the channel's refusal is the answer
        raise unprocessable(f"the {channel} channel refused the message: {exc}") from None
    return {"sent": True}


@routes.route("GET", "/api/v1/notifications/subscriptions", summary="Topic subscriptions", tag="notifications",
              permission="audit:read", response=array(SUBSCRIPTION))
async def list_subscriptions(ctx: Ctx) -> Any:
    return await ctx.store.list_subscriptions(ctx.tenant_id)


@routes.route("GET", "/api/v1/notifications/subscriptions/{topic}", summary="One topic subscription",
              tag="notifications", permission="audit:read", response=SUBSCRIPTION)
async def get_subscription(ctx: Ctx) -> Any:
    return await ctx.store.get_subscription(ctx.tenant_id, _topic(ctx))


@routes.route("PUT", "/api/v1/notifications/subscriptions/{topic}", summary="Subscribe channels to a topic",
              tag="notifications", permission="tenants:write", body=SUBSCRIPTION_BODY, response=SUBSCRIPTION)
async def put_subscription(ctx: Ctx) -> Any:
    topic = _topic(ctx)
    result = await ctx.store.put_subscription(ctx.tenant_id, topic, channels=ctx.body["channels"],
                                              min_interval_s=float(ctx.body.get("min_interval_s", 300)))
    await audit(ctx, "notification.subscription.update", "notification_subscription", topic, after=result)
    return result


@routes.route("DELETE", "/api/v1/notifications/subscriptions/{topic}", summary="Unsubscribe a topic",
              tag="notifications", permission="tenants:write", status=204)
async def delete_subscription(ctx: Ctx) -> Any:
    topic = _topic(ctx)
    await ctx.store.delete_subscription(ctx.tenant_id, topic)
    await audit(ctx, "notification.subscription.delete", "notification_subscription", topic)
    return Result(status=204)


@routes.route("POST", "/api/v1/notifications/unsubscribe", summary="Stop emails of one topic to one recipient",
              tag="notifications", public=True, body=UNSUBSCRIBE_BODY, query={"token": TOKEN},
              response=obj({"topic": {"type": "string"}, "recipient": {"type": "string"}}),
              description="The token comes from the email's link (also as `?token=` for RFC 8058 one-click).")
async def unsubscribe(ctx: Ctx) -> Any:
    token = ctx.body.get("token") or ctx.query.get("token")
    found = None if not token else ctx.request.app[NOTIFIER].tokens.read(token)
    if found is None:
        raise bad_request("token: is not a valid unsubscribe token", field="token")
    tenant_id, topic, recipient = found
    await ctx.store.add_optout(tenant_id, topic, recipient)
    await audit(ctx, "notification.unsubscribe", "notification_subscription", topic, tenant_id=tenant_id,
                actor=f"email:{recipient}")
    return {"topic": topic, "recipient": recipient}
