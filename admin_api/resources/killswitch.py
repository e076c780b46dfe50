"""Kill switch: switch traffic off globally, or for a tenant, key, provider or model, with a reason."""
from __future__ import annotations

from typing import Any

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.http import bad_request, forbidden, not_found
from admin_api.ids import is_uuid
from admin_api.roles import PLATFORM_ADMIN
from admin_api.routing import Result, RouteTable
from admin_api.schemas import KILL_SWITCH, array, obj
from admin_api.store import NotFoundError
from admin_api.store.killswitch import SCOPES

routes = RouteTable()

SET = obj({
    "scope": {"type": "string", "enum": list(SCOPES)},
    "target": {"type": "string", "minLength": 1, "maxLength": 200,
               "description": "Key id, provider or model name; ignored for global and tenant scope."},
    "reason": {"type": "string", "minLength": 1, "maxLength": 500},
    "platform_wide": {"type": "boolean", "description": "Provider/model switch for every tenant "
                                                        "(needs platform:admin)."},
}, ("scope", "reason"))
CLEAR_QUERY = {"platform_wide": {"type": "boolean", "default": False}}


def _scope_tenant(ctx: Ctx, scope: str, platform_wide: bool) -> str | None:
    """The tenant a switch belongs to (None: platform-wide), after checking the caller may set it."""
    if scope == "global" or platform_wide:
        if PLATFORM_ADMIN not in ctx.me.permissions:
            raise forbidden(f"missing permission {PLATFORM_ADMIN}")
        if platform_wide and scope in ("tenant", "key"):
            raise forbidden("tenant and key switches belong to one organization")
        return None
    return ctx.tenant_id


@routes.route("GET", "/api/v1/kill-switch", summary="Switches in force for this organization (and global ones)",
              tag="kill-switch", permission="killswitch:read", response=array(KILL_SWITCH))
async def list_switches(ctx: Ctx) -> Any:
    return await ctx.store.list_kill_switches(ctx.tenant_id)


@routes.route("PUT", "/api/v1/kill-switch", summary="Switch something off (effective on every worker within 1 s)",
              tag="kill-switch", permission="killswitch:write", body=SET, response=KILL_SWITCH)
async def set_switch(ctx: Ctx) -> Any:
    scope = ctx.body["scope"]
    tenant_id = _scope_tenant(ctx, scope, ctx.body.get("platform_wide", False))
    target = ctx.body.get("target", "")
    if scope in ("key", "provider", "model") and not target:
        raise bad_request("target: is required for this scope", field="target")
    if scope == "key" and not is_uuid(target):
        raise not_found("API key")
    try:
        switch = await ctx.store.set_kill_switch(tenant_id, scope, target, reason=ctx.body["reason"],
                                                 created_by=ctx.me.actor)
    except NotFoundError:
        raise not_found("API key") from None
    await ctx.changed()
    await audit(ctx, "kill_switch.set", "kill_switch", switch["id"], after=switch)
    return switch


@routes.route("DELETE", "/api/v1/kill-switch/{scope}/{target}", summary="Switch back on", tag="kill-switch",
              permission="killswitch:write", query=CLEAR_QUERY, status=204)
async def clear_switch(ctx: Ctx) -> Any:
    scope = ctx.param("scope")
    if scope not in SCOPES:
        raise not_found("kill switch")
    tenant_id = _scope_tenant(ctx, scope, ctx.query["platform_wide"])
    target = ctx.param("target")
    try:
        await ctx.store.clear_kill_switch(tenant_id, scope, target)
    except NotFoundError:
        raise not_found("kill switch") from None
    await ctx.changed()
    await audit(ctx, "kill_switch.clear", "kill_switch", f"{scope}:{target}",
                before={"scope": scope, "target": target, "tenant_id": tenant_id})
    return Result(status=204)
