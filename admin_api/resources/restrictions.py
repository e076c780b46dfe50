"""Restrictions: which models and providers a tenant, or one key, may use (null lifts a restriction)."""
from __future__ import annotations

from typing import Any

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.resources.common import path_id
from admin_api.routing import RouteTable
from admin_api.schemas import NAMES, obj

routes = RouteTable()

RESTRICTIONS = obj({"allowed_models": NAMES, "allowed_providers": NAMES}, ("allowed_models", "allowed_providers"))
RESTRICTIONS_SET = obj({"allowed_models": NAMES, "allowed_providers": NAMES}, min_properties=1)


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {"allowed_models": row["allowed_models"], "allowed_providers": row["allowed_providers"]}


@routes.route("GET", "/api/v1/restrictions", summary="The organization's model and provider allow-lists",
              tag="restrictions", permission="tenants:read", response=RESTRICTIONS)
async def get_restrictions(ctx: Ctx) -> Any:
    return _view(await ctx.store.get_tenant(ctx.tenant_id))


@routes.route("PUT", "/api/v1/restrictions", summary="Set the organization's allow-lists (null removes one)",
              tag="restrictions", permission="tenants:write", body=RESTRICTIONS_SET, response=RESTRICTIONS)
async def set_restrictions(ctx: Ctx) -> Any:
    before = _view(await ctx.store.get_tenant(ctx.tenant_id))
    after = _view(await ctx.store.update_tenant(ctx.tenant_id, **ctx.body))
    await ctx.changed()
    await audit(ctx, "restrictions.set", "tenant", ctx.tenant_id, before=before, after=after)
    return after


@routes.route("GET", "/api/v1/keys/{key_id}/restrictions", summary="A key's model and provider allow-lists",
              tag="restrictions", permission="keys:read", response=RESTRICTIONS)
async def get_key_restrictions(ctx: Ctx) -> Any:
    return _view(await ctx.store.get_key(ctx.tenant_id, path_id(ctx, "key_id", "API key")))


@routes.route("PUT", "/api/v1/keys/{key_id}/restrictions", summary="Set a key's allow-lists (null removes one)",
              tag="restrictions", permission="keys:write", body=RESTRICTIONS_SET, response=RESTRICTIONS)
async def set_key_restrictions(ctx: Ctx) -> Any:
    kid = path_id(ctx, "key_id", "API key")
    before = _view(await ctx.store.get_key(ctx.tenant_id, kid))
    after = _view(await ctx.store.update_key(ctx.tenant_id, kid, **ctx.body))
    await ctx.changed()
    await audit(ctx, "restrictions.set", "api_key", kid, before=before, after=after)
    return after
