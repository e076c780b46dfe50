"""Organizations, their members and usage."""
from __future__ import annotations

from typing import Any

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.http import conflict, forbidden, not_found, unprocessable
from admin_api.resources.common import (
    changed_fields,
    check_grantable,
    own_tenant,
    path_id,
)
from admin_api.roles import ROLE_PERMISSIONS, assignable_roles
from admin_api.routing import Result, RouteTable
from admin_api.schemas import (
    EMAIL,
    ID,
    LIMIT,
    MEMBER,
    NAME,
    ROLE,
    TENANT,
    TOKEN_LIMIT,
    USAGE,
    USER,
    array,
    nullable,
    obj,
)
from admin_api.store import ConflictError, NotFoundError

routes = RouteTable()

TENANT_CREATE = obj({"name": NAME}, ("name",))
TENANT_UPDATE = obj({"name": NAME, "rpm": LIMIT, "tpm": TOKEN_LIMIT, "policy_id": nullable(ID),
                     "settings": obj({"description": {"type": "string", "maxLength": 2000}})}, min_properties=1)
MEMBER_ADD = obj({"user_id": ID, "email": EMAIL, "role": ROLE}, ("role",))
MEMBER_UPDATE = obj({"role": ROLE}, ("role",))
ROLE_INFO = obj({"role": ROLE, "permissions": array({"type": "string"}), "assignable": {"type": "boolean"}},
                ("role", "permissions", "assignable"))
USAGE_QUERY = {"days": {"type": "integer", "minimum": 1, "maximum": 366, "default": 30}}


@routes.route("GET", "/api/v1/tenants", summary="Organizations the caller belongs to", tag="tenants",
              response=array(TENANT))
async def list_tenants(ctx: Ctx) -> Any:
    if ctx.me.kind == "api_key":
        return [await ctx.store.get_tenant(ctx.tenant_id)]
    return await ctx.store.list_tenants_for_user(ctx.me.id)


@routes.route("POST", "/api/v1/tenants", summary="Create an organization; the caller becomes its owner",
              tag="tenants", users_only=True, body=TENANT_CREATE, response=TENANT, status=201)
async def create_tenant(ctx: Ctx) -> Any:
    try:
        tenant = await ctx.store.create_tenant(ctx.body["name"])
    except ConflictError:
        raise conflict("an organization with this name exists") from None
    await ctx.store.add_member(tenant["id"], ctx.me.id, "owner")
    await ctx.changed()
    await audit(ctx, "tenant.create", "tenant", tenant["id"], after=tenant, tenant_id=tenant["id"])
    return Result(dict(tenant, role="owner"), status=201)


@routes.route("GET", "/api/v1/tenants/{tenant_id}", summary="The active organization", tag="tenants",
              permission="tenants:read", response=TENANT)
async def get_tenant(ctx: Ctx) -> Any:
    return await ctx.store.get_tenant(own_tenant(ctx))


@routes.route("PATCH", "/api/v1/tenants/{tenant_id}", summary="Rename or change limits of the organization",
              tag="tenants", permission="tenants:write", body=TENANT_UPDATE, response=TENANT)
async def update_tenant(ctx: Ctx) -> Any:
    tid = own_tenant(ctx)
    before = await ctx.store.get_tenant(tid)
    fields = changed_fields(ctx.body, ("name", "rpm", "tpm", "policy_id"))
    if "settings" in ctx.body:
        fields["settings"] = {**before["settings"], **ctx.body["settings"]}   # `platform` is not settable here
    if fields.get("policy_id"):
        try:
            await ctx.store.get_policy(tid, fields["policy_id"])
        except NotFoundError:
            raise unprocessable("policy_id does not name one of this organization's policies") from None
    try:
        after = await ctx.store.update_tenant(tid, **fields)
    except ConflictError:
        raise conflict("an organization with this name exists") from None
    await ctx.changed()
    await audit(ctx, "tenant.update", "tenant", tid, before=before, after=after)
    return after


@routes.route("DELETE", "/api/v1/tenants/{tenant_id}", summary="Delete the organization and everything it owns",
              tag="tenants", permission="tenants:delete", users_only=True, status=204)
async def delete_tenant(ctx: Ctx) -> Any:
    tid = own_tenant(ctx)
    before = await ctx.store.get_tenant(tid)
    if before["settings"].get("platform") is True:
        raise forbidden("the platform organization cannot be deleted")
    await ctx.store.delete_tenant(tid)
    await ctx.changed()
    await audit(ctx, "tenant.delete", "tenant", tid, before=before)
    return Result(status=204)


@routes.route("GET", "/api/v1/tenants/{tenant_id}/usage", summary="Usage: requests, tokens, cost, blocks",
              tag="tenants", permission="requests:read", query=USAGE_QUERY, response=USAGE)
async def tenant_usage(ctx: Ctx) -> Any:
    return await ctx.store.usage_stats(own_tenant(ctx), days=ctx.query["days"])


@routes.route("GET", "/api/v1/tenants/{tenant_id}/roles", summary="Roles and whether the caller may assign them",
              tag="tenants", permission="members:read", response=array(ROLE_INFO))
async def tenant_roles(ctx: Ctx) -> Any:
    own_tenant(ctx)
    mine = set(assignable_roles(ctx.me.permissions))
    return [{"role": r, "permissions": sorted(p), "assignable": r in mine} for r, p in ROLE_PERMISSIONS.items()]


@routes.route("GET", "/api/v1/tenants/{tenant_id}/members", summary="Members of the organization",
              tag="tenants", permission="members:read", paginated=True, response=array(USER))
async def list_members(ctx: Ctx) -> Any:
    return await ctx.store.list_users(own_tenant(ctx), limit=ctx.limit, after=ctx.after)


@routes.route("POST", "/api/v1/tenants/{tenant_id}/members",
              summary="Add an existing user (by id or email) with a role", tag="tenants",
              permission="members:write", body=MEMBER_ADD, response=MEMBER, status=201)
async def add_member(ctx: Ctx) -> Any:
    tid = own_tenant(ctx)
    role = ctx.body["role"]
    check_grantable(ctx, role)
    user_id = ctx.body.get("user_id")
    if user_id is None:
        if "email" not in ctx.body:
            raise unprocessable("give user_id or email")
        matches = await ctx.store.find_login_candidates(ctx.body["email"])
        if len(matches) != 1:
            raise not_found("user")
        user_id = matches[0]["id"]
    try:
        member = await ctx.store.add_member(tid, user_id, role)
    except ConflictError:
        raise conflict("the user is already a member") from None
    except NotFoundError:
        raise not_found("user") from None
    await audit(ctx, "member.add", "membership", user_id, after=member)
    return Result(member, status=201)


@routes.route("PATCH", "/api/v1/tenants/{tenant_id}/members/{user_id}", summary="Change a member's role",
              tag="tenants", permission="members:write", body=MEMBER_UPDATE, response=USER)
async def update_member(ctx: Ctx) -> Any:
    tid = own_tenant(ctx)
    uid = path_id(ctx, "user_id", "member")
    before = await ctx.store.get_user(tid, uid)
    check_grantable(ctx, before["role"])
    check_grantable(ctx, ctx.body["role"])
    if before["role"] == "owner" and ctx.body["role"] != "owner":
        await _keep_an_owner(ctx, tid)
    after = await ctx.store.update_user(tid, uid, role=ctx.body["role"])
    await audit(ctx, "member.update", "membership", uid, before={"role": before["role"]},
                after={"role": after["role"]})
    return after


@routes.route("DELETE", "/api/v1/tenants/{tenant_id}/members/{user_id}", summary="Remove a member",
              tag="tenants", permission="members:write", status=204)
async def remove_member(ctx: Ctx) -> Any:
    tid = own_tenant(ctx)
    uid = path_id(ctx, "user_id", "member")
    before = await ctx.store.get_user(tid, uid)
    check_grantable(ctx, before["role"])
    if before["role"] == "owner":
        await _keep_an_owner(ctx, tid)
    if before["tenant_id"] == tid:
        raise unprocessable("this is the user's home organization; delete the user instead")
    await ctx.store.remove_member(tid, uid)
    await audit(ctx, "member.remove", "membership", uid, before={"role": before["role"]})
    return Result(status=204)


async def _keep_an_owner(ctx: Ctx, tenant_id: str) -> None:
    if await ctx.store.count_members_with_role(tenant_id, "owner") <= 1:
        raise unprocessable("an organization must keep at least one owner")

