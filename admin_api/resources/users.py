"""Users of the active organization, their roles and sessions."""
from __future__ import annotations

import asyncio
from typing import Any

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.http import bad_request, conflict, unprocessable
from admin_api.passwords import hash_password, password_problem
from admin_api.resources.common import check_grantable, path_id
from admin_api.routing import Result, RouteTable
from admin_api.schemas import EMAIL, PASSWORD, ROLE, SESSION, USER, array, obj
from admin_api.store import ConflictError, StoreError

routes = RouteTable()

USER_CREATE = obj({"email": EMAIL, "password": PASSWORD, "name": {"type": "string", "maxLength": 200},
                   "role": ROLE}, ("email", "password", "role"))
USER_UPDATE = obj({"name": {"type": "string", "maxLength": 200}, "role": ROLE,
                   "status": {"type": "string", "enum": ["active", "disabled"]}, "password": PASSWORD},
                  min_properties=1)


@routes.route("GET", "/api/v1/users", summary="Users of the organization", tag="users", permission="users:read",
              paginated=True, response=array(USER))
async def list_users(ctx: Ctx) -> Any:
    return await ctx.store.list_users(ctx.tenant_id, limit=ctx.limit, after=ctx.after)


@routes.route("POST", "/api/v1/users", summary="Create a user in the organization", tag="users",
              permission="users:write", body=USER_CREATE, response=USER, status=201)
async def create_user(ctx: Ctx) -> Any:
    check_grantable(ctx, ctx.body["role"])
    problem = password_problem(ctx.body["password"])
    if problem:
        raise bad_request(f"password: {problem}", field="password")
    pw_hash = await asyncio.to_thread(hash_password, ctx.body["password"])
    try:
        user = await ctx.store.create_user(ctx.tenant_id, ctx.body["email"], pw_hash, ctx.body["role"],
                                           name=ctx.body.get("name", ""))
    except ConflictError:
        raise conflict("a user with this email exists in the organization") from None
    await audit(ctx, "user.create", "user", user["id"], after=user)
    return Result(user, status=201)


@routes.route("GET", "/api/v1/users/{user_id}", summary="One user", tag="users", permission="users:read",
              response=USER)
async def get_user(ctx: Ctx) -> Any:
    return await ctx.store.get_user(ctx.tenant_id, path_id(ctx, "user_id", "user"))


@routes.route("PATCH", "/api/v1/users/{user_id}", summary="Change a user's name, role, status or password",
              tag="users", permission="users:write", body=USER_UPDATE, response=USER)
async def update_user(ctx: Ctx) -> Any:
    uid = path_id(ctx, "user_id", "user")
    before = await ctx.store.get_user(ctx.tenant_id, uid)
    check_grantable(ctx, before["role"])
    fields: dict[str, Any] = {k: ctx.body[k] for k in ("name", "role", "status") if k in ctx.body}
    if "role" in fields:
        check_grantable(ctx, fields["role"])
        if before["role"] == "owner" and fields["role"] != "owner":
            await _keep_an_owner(ctx)
    if fields.get("status") == "disabled" and uid == ctx.me.id:
        raise unprocessable("you cannot disable yourself")
    if "password" in ctx.body:
        problem = password_problem(ctx.body["password"])
        if problem:
            raise bad_request(f"password: {problem}", field="password")
        fields["password_hash"] = await asyncio.to_thread(hash_password, ctx.body["password"])
    try:
        after = await ctx.store.update_user(ctx.tenant_id, uid, **fields)
    except StoreError as exc:
        raise unprocessable(str(exc)) from None
    if "password_hash" in fields or fields.get("status") == "disabled":
        await ctx.store.revoke_user_sessions(ctx.tenant_id, uid)
    await audit(ctx, "user.update", "user", uid, before=before, after=after,
                details={"password_changed": "password_hash" in fields})
    return after


@routes.route("DELETE", "/api/v1/users/{user_id}", summary="Delete a user (and their sessions)", tag="users",
              permission="users:write", status=204)
async def delete_user(ctx: Ctx) -> Any:
    uid = path_id(ctx, "user_id", "user")
    before = await ctx.store.get_user(ctx.tenant_id, uid)
    check_grantable(ctx, before["role"])
    if uid == ctx.me.id:
        raise unprocessable("you cannot delete yourself")
    if before["role"] == "owner":
        await _keep_an_owner(ctx)
    if before["tenant_id"] != ctx.tenant_id:
        await ctx.store.remove_member(ctx.tenant_id, uid)     # a guest: only the membership goes
    else:
        await ctx.store.delete_user(ctx.tenant_id, uid)
    await audit(ctx, "user.delete", "user", uid, before=before)
    return Result(status=204)


@routes.route("GET", "/api/v1/users/{user_id}/sessions", summary="A user's signed-in sessions", tag="users",
              permission="users:read", response=array(SESSION))
async def user_sessions(ctx: Ctx) -> Any:
    uid = path_id(ctx, "user_id", "user")
    await ctx.store.get_user(ctx.tenant_id, uid)
    return await ctx.store.list_sessions(ctx.tenant_id, uid)


@routes.route("DELETE", "/api/v1/users/{user_id}/sessions", summary="Sign a user out everywhere", tag="users",
              permission="users:write", status=204)
async def revoke_user_sessions(ctx: Ctx) -> Any:
    uid = path_id(ctx, "user_id", "user")
    target = await ctx.store.get_user(ctx.tenant_id, uid)
    check_grantable(ctx, target["role"])
    count = await ctx.store.revoke_user_sessions(ctx.tenant_id, uid)
    await audit(ctx, "user.sessions_revoke", "user", uid, details={"revoked_tokens": count})
    return Result(status=204)


async def _keep_an_owner(ctx: Ctx) -> None:
    if await ctx.store.count_members_with_role(ctx.tenant_id, "owner") <= 1:
        raise unprocessable("an organization must keep at least one owner")
