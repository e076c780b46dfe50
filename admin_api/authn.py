"""Who is calling: a user's access JWT or an API key, re-checked against the store on every call.

Role changes, removed memberships, disabled users, suspended tenants and revoked keys take
effect on the next admin request, not when a token expires.
"""
from __future__ import annotations

from aiohttp import web

from admin_api.context import Principal
from admin_api.http import forbidden, unauthenticated
from admin_api.roles import permissions_for
from admin_api.settings import AdminSettings
from admin_api.store import NotFoundError, Store
from admin_api.store.codec import utcnow
from admin_api.tokens import TokenError, TokenIssuer
from pipeline.secrets_box import API_KEY_PREFIX, hash_api_key


class Authenticator:
    def __init__(self, store: Store, settings: AdminSettings, issuer: TokenIssuer) -> None:
        self._store = store
        self._settings = settings
        self._issuer = issuer

    async def __call__(self, request: web.Request) -> Principal:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("a bearer token (access token or API key) is required")
        if token.startswith(API_KEY_PREFIX):
            return await self._api_key(token)
        return await self._user(token)

    async def _tenant_platform(self, tenant_id: str) -> bool:
        try:
            tenant = await self._store.get_tenant(tenant_id)
        except NotFoundError:
            raise unauthenticated("the organization no longer exists") from None
        if tenant["status"] != "active":
            raise forbidden("the organization is suspended", code="AUTH-005")
        return tenant["settings"].get("platform") is True

    async def _user(self, token: str) -> Principal:
        try:
            claims = self._issuer.verify_access(token)
        except TokenError as exc:
            code = "AUTH-004" if str(exc) == "token expired" else "AUTH-001"
            raise unauthenticated(f"access token rejected: {exc}", code=code) from None
        try:
            user = await self._store.get_user(claims.tid, claims.sub)
        except NotFoundError:
            raise unauthenticated("the account no longer has access to this organization") from None
        if user["status"] != "active":
            raise unauthenticated("the account is disabled", code="AUTH-006")
        platform = await self._tenant_platform(claims.tid)
        role = user["role"]
        return Principal("user", user["id"], claims.tid, role, permissions_for(role, platform=platform))

    async def _api_key(self, raw: str) -> Principal:
        key = await self._store.find_key_by_hash(hash_api_key(self._settings.hash_key, raw))
        if key is None:
            raise unauthenticated("unknown API key")
        if key["status"] == "revoked":
            raise unauthenticated("the API key was revoked", code="AUTH-002")
        if key["expires_at"] is not None and key["expires_at"] <= utcnow():
            raise unauthenticated("the API key has expired", code="AUTH-004")
        await self._tenant_platform(key["tenant_id"])
        perms = permissions_for(key["role"])
        if key["scopes"]:
            perms = perms & frozenset(key["scopes"])
        return Principal("api_key", key["id"], key["tenant_id"], key["role"], perms)
