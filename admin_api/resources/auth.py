"""Sign-in, token refresh with reuse detection, logout, organization switch, MFA, sessions, JWKS."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from admin_api import totp
from admin_api.audit import audit
from admin_api.context import THROTTLE, Ctx
from admin_api.http import (
    bad_request,
    conflict,
    forbidden,
    not_found,
    too_many,
    unauthenticated,
)
from admin_api.passwords import (
    DUMMY_HASH,
    hash_password,
    password_problem,
    verify_password,
)
from admin_api.resources.common import path_id
from admin_api.roles import permissions_for
from admin_api.routing import Result, RouteTable
from admin_api.schemas import (
    EMAIL,
    ID,
    NAME,
    PASSWORD,
    ROLE,
    SESSION,
    TOKENS,
    USER,
    array,
    obj,
)
from admin_api.store import ConflictError, NotFoundError
from admin_api.store.codec import utcnow

routes = RouteTable()

LOGIN = obj({"email": EMAIL, "password": PASSWORD, "tenant_id": ID,
             "mfa_code": {"type": "string", "maxLength": 12}}, ("email", "password"))
REFRESH = obj({"refresh_token": {"type": "string", "minLength": 1, "maxLength": 200}}, ("refresh_token",))
REGISTER = obj({"email": EMAIL, "password": PASSWORD, "name": {"type": "string", "maxLength": 200},
                "organization": NAME}, ("email", "password", "organization"))
SWITCH = obj({"tenant_id": ID}, ("tenant_id",))
REAUTH = obj({"password": PASSWORD}, ("password",))
MFA_DISABLE = obj({"password": PASSWORD, "mfa_code": {"type": "string", "maxLength": 12}}, ("password",))
ME = obj({"kind": {"type": "string", "enum": ["user", "api_key"]}, "id": ID, "tenant_id": ID, "role": ROLE,
          "permissions": array({"type": "string"}), "user": USER}, ("kind", "id", "tenant_id", "role", "permissions"),
         closed=False)
MFA_SETUP = obj({"secret": {"type": "string"}, "otpauth_uri": {"type": "string"}}, ("secret", "otpauth_uri"))
JWKS = obj({"keys": array(obj({"kty": {"type": "string"}, "crv": {"type": "string"}, "x": {"type": "string"},
                              "kid": {"type": "string"}, "alg": {"type": "string"}, "use": {"type": "string"}},
                             ("kty", "kid", "x"), closed=False))}, ("keys",))


async def _platform(ctx: Ctx, tenant_id: str) -> bool:
    tenant = await ctx.store.get_tenant(tenant_id)
    if tenant["status"] != "active":
        raise forbidden("the organization is suspended", code="AUTH-005")
    return tenant["settings"].get("platform") is True


async def issue_session(ctx: Ctx, user_id: str, tenant_id: str, *, family_id: str | None = None,
                        refresh: tuple[str, str] | None = None) -> dict[str, Any]:
    """Access token plus refresh token (a new family unless continuing one)."""
    user = await ctx.store.get_user(tenant_id, user_id)
    if user["status"] != "active":
        raise unauthenticated("the account is disabled", code="AUTH-006")
    perms = permissions_for(user["role"], platform=await _platform(ctx, tenant_id))
    access, ttl = ctx.issuer.issue_access(user_id=user_id, tenant_id=tenant_id, role=user["role"], permissions=perms)
    token, token_hash = refresh or ctx.issuer.new_refresh()
    if refresh is None:
        await ctx.store.create_refresh_token(
            tenant_id, user_id, token_hash, utcnow() + timedelta(seconds=ctx.issuer.refresh_ttl_s),
            family_id=family_id, user_agent=ctx.request.headers.get("User-Agent", ""),
        )
    return {"access_token": access, "token_type": "Bearer", "expires_in": ttl, "refresh_token": token,
            "refresh_expires_in": ctx.issuer.refresh_ttl_s, "tenant_id": tenant_id, "role": user["role"],
            "permissions": sorted(perms), "user": user}


@routes.route("POST", "/api/v1/auth/login", summary="Sign in with email and password (and TOTP code when enabled)",
              tag="auth", public=True, body=LOGIN, response=TOKENS, problems=(429,))
async def login(ctx: Ctx) -> Any:
    email = ctx.body["email"].strip().lower()
    password = ctx.body["password"]
    throttle = ctx.request.app[THROTTLE]
    keys = (f"email:{email}", f"ip:{ctx.request.remote or ''}")
    wait = throttle.retry_after(*keys)
    if wait > 0:
        raise too_many("too many failed sign-in attempts; try again later", wait)
    candidates = await ctx.store.find_login_candidates(email)
    if "tenant_id" in ctx.body:
        candidates = [c for c in candidates if c["tenant_id"] == ctx.body["tenant_id"]]
    matched = None
    for cand in candidates:
        if await asyncio.to_thread(verify_password, password, cand["password_hash"]):
            matched = cand
            break
    if not candidates:
        await asyncio.to_thread(verify_password, password, DUMMY_HASH)
    if matched is None or matched["status"] != "active":
        throttle.failed(*keys)
        if candidates:
            await audit(ctx, "auth.login", "user", candidates[0]["id"], outcome="failure",
                        tenant_id=candidates[0]["tenant_id"], actor=f"user:{candidates[0]['id']}")
        raise unauthenticated("email or password is wrong")
    if matched["mfa_secret_enc"] is not None:
        code = ctx.body.get("mfa_code")
        if not code:
            raise unauthenticated("a one-time code from your authenticator app is required", code="AUTH-007")
        secret = ctx.store.open_mfa_secret(matched["tenant_id"], matched["id"], matched["mfa_secret_enc"])
        if not totp.verify(secret.decode(), code):
            throttle.failed(*keys)
            raise unauthenticated("the one-time code is wrong", code="AUTH-007")
    throttle.succeeded(keys[0])
    await ctx.store.touch_login(matched["tenant_id"], matched["id"])
    session = await issue_session(ctx, matched["id"], matched["tenant_id"])
    await audit(ctx, "auth.login", "user", matched["id"], tenant_id=matched["tenant_id"],
                actor=f"user:{matched['id']}")
    return session


@routes.route("POST", "/api/v1/auth/register", summary="Create an organization and its owner (when enabled)",
              tag="auth", public=True, body=REGISTER, response=TOKENS, status=201)
async def register(ctx: Ctx) -> Any:
    if not ctx.settings.allow_registration:
        raise forbidden("self-registration is disabled on this server", code="AUTH-010")
    problem = password_problem(ctx.body["password"])
    if problem:
        raise bad_request(f"password: {problem}", field="password")
    try:
        tenant = await ctx.store.create_tenant(ctx.body["organization"])
    except ConflictError:
        raise conflict("an organization with this name exists") from None
    pw_hash = await asyncio.to_thread(hash_password, ctx.body["password"])
    user = await ctx.store.create_user(tenant["id"], ctx.body["email"], pw_hash, "owner",
                                       name=ctx.body.get("name", ""))
    await ctx.changed()
    await audit(ctx, "auth.register", "tenant", tenant["id"], after=tenant, tenant_id=tenant["id"],
                actor=f"user:{user['id']}")
    return Result(await issue_session(ctx, user["id"], tenant["id"]), status=201)


@routes.route("POST", "/api/v1/auth/refresh", summary="Exchange a refresh token for new tokens (rotation)",
              tag="auth", public=True, body=REFRESH, response=TOKENS,
              description="Each refresh token works once. Presenting a used one revokes the whole session family.")
async def refresh(ctx: Ctx) -> Any:
    presented = ctx.body["refresh_token"]
    new = ctx.issuer.new_refresh()
    rotation = await ctx.store.rotate_refresh_token(
        ctx.issuer.hash_refresh(presented), new[1], utcnow() + timedelta(seconds=ctx.issuer.refresh_ttl_s)
    )
    if rotation.outcome == "reused":
        await audit(ctx, "auth.refresh_reuse", "session", rotation.family_id, outcome="denied",
                    tenant_id=rotation.tenant_id, actor=f"user:{rotation.user_id}",
                    details={"effect": "session family revoked"})
        raise unauthenticated("refresh token was already used; the session has been revoked", code="AUTH-008")
    if rotation.outcome != "rotated" or rotation.tenant_id is None or rotation.user_id is None:
        raise unauthenticated("refresh token is invalid or expired", code="AUTH-009")
    try:
        return await issue_session(ctx, rotation.user_id, rotation.tenant_id, family_id=rotation.family_id,
                                   refresh=new)
    except NotFoundError:
        raise unauthenticated("the account no longer has access to this organization") from None


@routes.route("POST", "/api/v1/auth/logout", summary="Sign out everywhere: revoke all refresh tokens",
              tag="auth", users_only=True, status=204)
async def logout(ctx: Ctx) -> Any:
    count = await ctx.store.revoke_user_sessions(ctx.tenant_id, ctx.me.id)
    await audit(ctx, "auth.logout", "user", ctx.me.id, details={"revoked_tokens": count})
    return Result(status=204)


@routes.route("POST", "/api/v1/auth/switch", summary="Switch the active organization", tag="auth",
              users_only=True, body=SWITCH, response=TOKENS)
async def switch_organization(ctx: Ctx) -> Any:
    target = ctx.body["tenant_id"]
    try:
        session = await issue_session(ctx, ctx.me.id, target)
    except NotFoundError:
        raise not_found("organization") from None
    await audit(ctx, "auth.switch", "tenant", target, tenant_id=target)
    return session


@routes.route("GET", "/api/v1/auth/me", summary="The caller: identity, organization, role and permissions",
              tag="auth", response=ME)
async def me(ctx: Ctx) -> Any:
    p = ctx.me
    out: dict[str, Any] = {"kind": p.kind, "id": p.id, "tenant_id": p.tenant_id, "role": p.role,
                           "permissions": sorted(p.permissions)}
    if p.kind == "user":
        out["user"] = await ctx.store.get_user(p.tenant_id, p.id)
    return out


async def _reauthenticate(ctx: Ctx) -> dict[str, Any]:
    user = await ctx.store.get_user(ctx.tenant_id, ctx.me.id)
    cands = [c for c in await ctx.store.find_login_candidates(user["email"]) if c["id"] == user["id"]]
    if not cands or not await asyncio.to_thread(verify_password, ctx.body["password"], cands[0]["password_hash"]):
        raise forbidden("password is wrong", code="AUTH-011")
    return cands[0]


@routes.route("POST", "/api/v1/auth/mfa", summary="Turn on TOTP sign-in codes; the secret is shown once",
              tag="auth", users_only=True, body=REAUTH, response=MFA_SETUP, status=201)
async def enable_mfa(ctx: Ctx) -> Any:
    user = await _reauthenticate(ctx)
    if user["mfa_secret_enc"] is not None:
        raise conflict("MFA is already on; turn it off first to enrol a new device")
    secret = totp.new_secret()
    await ctx.store.set_user_mfa_secret(user["tenant_id"], user["id"], secret.encode())
    await audit(ctx, "auth.mfa_enable", "user", user["id"])
    return Result({"secret": secret, "otpauth_uri": totp.provisioning_uri(secret, user["email"])}, status=201)


@routes.route("POST", "/api/v1/auth/mfa/disable", summary="Turn off TOTP sign-in codes", tag="auth",
              users_only=True, body=MFA_DISABLE, status=204)
async def disable_mfa(ctx: Ctx) -> Any:
    user = await _reauthenticate(ctx)
    if user["mfa_secret_enc"] is not None:
        secret = ctx.store.open_mfa_secret(user["tenant_id"], user["id"], user["mfa_secret_enc"])
        if not totp.verify(secret.decode(), ctx.body.get("mfa_code", "")):
            raise forbidden("the one-time code is wrong", code="AUTH-007")
    await ctx.store.set_user_mfa_secret(user["tenant_id"], user["id"], None)
    await audit(ctx, "auth.mfa_disable", "user", user["id"])
    return Result(status=204)


@routes.route("GET", "/api/v1/auth/sessions", summary="The caller's signed-in sessions", tag="auth",
              users_only=True, response=array(SESSION))
async def my_sessions(ctx: Ctx) -> Any:
    return await ctx.store.list_sessions(ctx.tenant_id, ctx.me.id)


@routes.route("DELETE", "/api/v1/auth/sessions/{session_id}", summary="Revoke one of the caller's sessions",
              tag="auth", users_only=True, status=204)
async def revoke_my_session(ctx: Ctx) -> Any:
    sid = path_id(ctx, "session_id", "session")
    if await ctx.store.revoke_session(ctx.tenant_id, ctx.me.id, sid) == 0:
        raise not_found("session")
    await audit(ctx, "auth.session_revoke", "session", sid)
    return Result(status=204)


@routes.route("GET", "/.well-known/jwks.json", summary="Public keys that verify access tokens", tag="auth",
              public=True, envelope=False, response=JWKS)
async def jwks(ctx: Ctx) -> Any:
    return Result(ctx.issuer.jwks(), headers={"Cache-Control": "public, max-age=3600"})
