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
               "description": "Key id (key scope), provider or model name; ignored for global and tenant scope."},
    "reason": {"type": "string", "minLength": 1, "maxLength": 500},
}, ("scope", "reason"))

# Provider and model switches act on every tenant (the proxy applies them to all traffic), so
# they are platform decisions; an organization limits its own models and providers with
# restrictions (PUT /api/v1/restrictions) instead.
PLATFORM_SCOPES = frozenset(("global", "provider", "model"))


def _scope_tenant(ctx: Ctx, scope: str) -> str | None:
    """The tenant a switch belongs to (None: platform-wide), after checking the caller may set it."""
    if scope in PLATFORM_SCOPES:
        if PLATFORM_ADMIN not in ctx.me.permissions:
            raise forbidden(f"{scope} switches apply to every organization and need {PLATFORM_ADMIN}; "
                            "use restrictions to limit this organization's models and providers")
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
    tenant_id = _scope_tenant(ctx, scope)
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


@routes.route("DELETE", "/api/v1/kill-switch/{scope}/{target:.+}",
              summary="Switch back on (the target may contain slashes, e.g. provider/model)", tag="kill-switch",
              permission="killswitch:write", status=204)
async def clear_switch(ctx: Ctx) -> Any:
    scope = ctx.param("scope")
    if scope not in SCOPES:
        raise not_found("kill switch")
    tenant_id = _scope_tenant(ctx, scope)
    target = ctx.param("target")
    try:
        await ctx.store.clear_kill_switch(tenant_id, scope, target)
    except NotFoundError:
        raise not_found("kill switch") from None
    await ctx.changed()
    await audit(ctx, "kill_switch.clear", "kill_switch", f"{scope}:{target}",
                before={"scope": scope, "target": target, "tenant_id": tenant_id})
    return Result(status=204)
