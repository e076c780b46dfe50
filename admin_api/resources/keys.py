"""API keys: the secret is shown once at creation; afterwards only the masked form."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.http import unprocessable
from admin_api.resources.common import changed_fields, check_grantable, path_id
from admin_api.routing import Result, RouteTable
from admin_api.schemas import (
    ID,
    KEY,
    LIMIT,
    NAME,
    NAMES,
    ROLE,
    SCOPES,
    TOKEN_LIMIT,
    TS,
    array,
    nullable,
    obj,
)
from admin_api.store import NotFoundError
from admin_api.store.codec import dt_value, utcnow
from admin_api.store.keys import effective_status
from pipeline.secrets_box import generate_api_key, hash_api_key

routes = RouteTable()

BUDGET = {"type": ["number", "null"], "minimum": 0, "maximum": 1e9}
_LIMITS = {"rpm": LIMIT, "tpm": TOKEN_LIMIT, "budget_usd": BUDGET, "policy_id": nullable(ID),
           "allowed_models": NAMES, "allowed_providers": NAMES, "scopes": SCOPES, "role": ROLE}
KEY_CREATE = obj({
    "name": NAME, "expires_in_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650},
    "expires_at": TS, "source": {"type": "string", "maxLength": 64}, **_LIMITS,
}, ("name",))
KEY_UPDATE = obj({"name": NAME, **_LIMITS}, min_properties=1)
KEY_CREATED = {**KEY, "properties": {**KEY["properties"], "key": {"type": "string"}},
               "required": [*KEY["required"], "key"]}
REVOKE = obj({"reason": {"type": "string", "minLength": 1, "maxLength": 500}}, ("reason",))
STATUS = obj({"id": ID, "status": {"type": "string", "enum": ["active", "expired", "revoked"]},
              "reason": {"type": ["string", "null"]}, "expires_at": nullable(TS), "revoked_at": nullable(TS),
              "last_used_at": nullable(TS)}, ("id", "status"))
STATS = obj({"total": {"type": "integer"}, "active": {"type": "integer"}, "expired": {"type": "integer"},
             "revoked": {"type": "integer"}, "last_used_at": nullable(TS), "requests": {"type": "integer"},
             "tokens": {"type": "integer"}, "cost_usd": {"type": "number"}},
            ("total", "active", "expired", "revoked"))
LIST_QUERY = {"status": {"type": "string", "enum": ["active", "expired", "revoked"]}}


def _with_status(key: dict[str, Any]) -> dict[str, Any]:
    return dict(key, effective_status=effective_status(key, utcnow()))


async def _check_policy(ctx: Ctx, policy_id: str | None) -> None:
    if policy_id:
        try:
            await ctx.store.get_policy(ctx.tenant_id, policy_id)
        except NotFoundError:
            raise unprocessable("policy_id does not name one of this organization's policies") from None


@routes.route("GET", "/api/v1/keys", summary="API keys of every status", tag="keys", permission="keys:read",
              paginated=True, query=LIST_QUERY, response=array(KEY))
async def list_keys(ctx: Ctx) -> Any:
    return await ctx.store.list_keys(ctx.tenant_id, status=ctx.query.get("status"), limit=ctx.limit,
                                     after=ctx.after)


@routes.route("POST", "/api/v1/keys", summary="Create an API key (the secret is in this answer only)",
              tag="keys", permission="keys:write", body=KEY_CREATE, response=KEY_CREATED, status=201)
async def create_key(ctx: Ctx) -> Any:
    body = ctx.body
    role = body.get("role", "member")
    check_grantable(ctx, role)
    await _check_policy(ctx, body.get("policy_id"))
    expires_at = None
    if body.get("expires_in_days") is not None:
        expires_at = utcnow() + timedelta(days=body["expires_in_days"])
    elif "expires_at" in body:
        expires_at = dt_value(body["expires_at"].replace("Z", "+00:00"))
        if expires_at is None or expires_at.tzinfo is None or expires_at <= utcnow():
            raise unprocessable("expires_at must be a future time with a timezone")
    raw = generate_api_key()
    fields = changed_fields(body, ("rpm", "tpm", "budget_usd", "policy_id", "allowed_models",
                                   "allowed_providers", "scopes", "source"))
    key = await ctx.store.create_key(
        ctx.tenant_id, key_hash=hash_api_key(ctx.settings.hash_key, raw), prefix=raw[:12], last4=raw[-4:],
        name=body["name"], role=role, expires_at=expires_at, created_by=ctx.me.actor, **fields,
    )
    await ctx.changed()
    await audit(ctx, "key.create", "api_key", key["id"], after=key)
    return Result(dict(_with_status(key), key=raw), status=201)


@routes.route("GET", "/api/v1/keys/stats", summary="Counts by status and latest activity", tag="keys",
              permission="keys:read", response=STATS)
async def key_stats(ctx: Ctx) -> Any:
    return await ctx.store.key_stats(ctx.tenant_id)


@routes.route("GET", "/api/v1/keys/{key_id}", summary="One API key (masked)", tag="keys", permission="keys:read",
              response=KEY)
async def get_key(ctx: Ctx) -> Any:
    return _with_status(await ctx.store.get_key(ctx.tenant_id, path_id(ctx, "key_id", "API key")))


@routes.route("PATCH", "/api/v1/keys/{key_id}", summary="Change a key's name, limits, role, scopes or policy",
              tag="keys", permission="keys:write", body=KEY_UPDATE, response=KEY)
async def update_key(ctx: Ctx) -> Any:
    kid = path_id(ctx, "key_id", "API key")
    before = await ctx.store.get_key(ctx.tenant_id, kid)
    check_grantable(ctx, before["role"])
    if "role" in ctx.body:
        check_grantable(ctx, ctx.body["role"])
    await _check_policy(ctx, ctx.body.get("policy_id"))
    after = await ctx.store.update_key(ctx.tenant_id, kid, **ctx.body)
    await ctx.changed()
    await audit(ctx, "key.update", "api_key", kid, before=before, after=after)
    return _with_status(after)


@routes.route("GET", "/api/v1/keys/{key_id}/status", summary="Whether the key works now, and why not",
              tag="keys", permission="keys:read", response=STATUS)
async def key_status(ctx: Ctx) -> Any:
    key = await ctx.store.get_key(ctx.tenant_id, path_id(ctx, "key_id", "API key"))
    status = effective_status(key, utcnow())
    reason = {"revoked": key["revoked_reason"], "expired": "expired"}.get(status)
    return {"id": key["id"], "status": status, "reason": reason, "expires_at": key["expires_at"],
            "revoked_at": key["revoked_at"], "last_used_at": key["last_used_at"]}


@routes.route("POST", "/api/v1/keys/{key_id}/revoke", summary="Revoke a key (kept for audit)", tag="keys",
              permission="keys:write", body=REVOKE, response=KEY)
async def revoke_key(ctx: Ctx) -> Any:
    kid = path_id(ctx, "key_id", "API key")
    before = await ctx.store.get_key(ctx.tenant_id, kid)
    after = await ctx.store.revoke_key(ctx.tenant_id, kid, revoked_by=ctx.me.actor, reason=ctx.body["reason"])
    await ctx.changed()
    await audit(ctx, "key.revoke", "api_key", kid, before=before, after=after)
    return _with_status(after)


@routes.route("DELETE", "/api/v1/keys/{key_id}", summary="Delete a key for good", tag="keys",
              permission="keys:write", status=204)
async def delete_key(ctx: Ctx) -> Any:
    kid = path_id(ctx, "key_id", "API key")
    before = await ctx.store.get_key(ctx.tenant_id, kid)
    await ctx.store.delete_key(ctx.tenant_id, kid)
    await ctx.changed()
    await audit(ctx, "key.delete", "api_key", kid, before=before)
    return Result(status=204)
