"""Stage 2: authenticate an API key (keyed hash, in-memory directory) or a JWT."""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from pipeline.context import Principal, RequestContext
from pipeline.directory import Directory, KeyRecord
from pipeline.errors import Forbidden, Unauthenticated
from pipeline.secrets_box import ApiKeyHasher

# Permissions an API key carries by default on the data plane.
KEY_PERMISSIONS = frozenset({"gateway:write", "gateway:read", "checks:write", "traces:write"})

JwtVerifier = Callable[[str], Mapping[str, Any]]


def bearer_token(headers: Mapping[str, str]) -> str | None:
    token = headers.get("X-Casemate-API-Key")
    if token:
        return token.strip()
    auth = headers.get("Authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


class AuthenticateStage:
    name = "authenticate"
    phase = "prefix"
    optional = False

    def __init__(self, directory: Directory, hash_key: bytes, jwt_verifier: JwtVerifier | None = None) -> None:
        self._dir = directory
        self._hash = ApiKeyHasher(hash_key)
        self._jwt = jwt_verifier
        self._cache: dict[str, tuple[KeyRecord, Principal]] = {}
        self._generation = -1

    def __call__(self, ctx: RequestContext) -> None:
        token = bearer_token(ctx.headers)
        if not token:
            raise Unauthenticated("Missing API key: send 'Authorization: Bearer <key>' or 'X-Casemate-API-Key'.",
                                  error_code="AUTH-001", reason="missing_key")
        if token.count(".") == 2 and not token.startswith("cm_"):
            ctx.principal = self._from_jwt(token)
            return
        digest = self._hash(token)
        d = self._dir
        if d.generation != self._generation:       # any directory change drops resolved principals
            self._cache.clear()
            self._generation = d.generation
        hit = self._cache.get(digest)
        if hit is not None:
            rec, principal = hit
            if rec.expires_at is not None and rec.expires_at <= time.time():
                raise Unauthenticated("API key has expired.", error_code="AUTH-005", reason="key_expired")
            ctx.principal = principal
            return
        rec = d.keys_by_hash.get(digest)
        if rec is None:
            raise Unauthenticated("Invalid API key.", error_code="AUTH-002", reason="invalid_key")
        principal = self.principal_for_key(rec)
        if len(self._cache) < 100_000:
            self._cache[digest] = (rec, principal)
        ctx.principal = principal

    def principal_for_key(self, rec: KeyRecord) -> Principal:
        if rec.status != "active":
            raise Unauthenticated("API key has been revoked.", error_code="AUTH-004", reason="key_revoked")
        if rec.expires_at is not None and rec.expires_at <= time.time():
            raise Unauthenticated("API key has expired.", error_code="AUTH-005", reason="key_expired")
        tenant = self._dir.tenants.get(rec.tenant_id)
        if tenant is None or tenant.status != "active":
            raise Forbidden("The key's organization is suspended.", error_code="AUTH-006", reason="tenant_suspended")
        allowed = _intersect(tenant.allowed_models, rec.allowed_models)
        providers = _intersect(tenant.allowed_providers, rec.allowed_providers)
        perms = frozenset(rec.scopes) if rec.scopes else KEY_PERMISSIONS
        return Principal(
            tenant_id=rec.tenant_id, tenant_name=tenant.name, subject=rec.id, kind="api_key", role=rec.role,
            permissions=perms, key_prefix=rec.prefix,
            rpm=rec.rpm if rec.rpm is not None else tenant.rpm,
            tpm=rec.tpm if rec.tpm is not None else tenant.tpm,
            tenant_rpm=tenant.rpm, tenant_tpm=tenant.tpm,
            allowed_models=allowed, allowed_providers=providers,
        )

    def _from_jwt(self, token: str) -> Principal:
        if self._jwt is None:
            raise Unauthenticated("Bearer token is not a Casemate API key.", error_code="AUTH-002", reason="invalid_key")
        try:
            claims = self._jwt(token)
        except Exception:  # noqa: BLE001 - any verification failure is a 401, never a 500
            raise Unauthenticated("Invalid or expired access token.", error_code="AUTH-007", reason="invalid_jwt") from None
        tid = str(claims.get("tid", ""))
        tenant = self._dir.tenants.get(tid)
        if tenant is None or tenant.status != "active":
            raise Forbidden("The token's organization is not active.", error_code="AUTH-006", reason="tenant_suspended")
        return Principal(
            tenant_id=tid, tenant_name=tenant.name, subject=str(claims.get("sub", "")),
            kind=str(claims.get("typ", "user")), role=str(claims.get("role", "member")),
            permissions=frozenset(claims.get("permissions") or ()), rpm=tenant.rpm, tpm=tenant.tpm,
            tenant_rpm=tenant.rpm, tenant_tpm=tenant.tpm,
            allowed_models=_intersect(tenant.allowed_models, None),
            allowed_providers=_intersect(tenant.allowed_providers, None),
        )


def _intersect(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> frozenset[str] | None:
    if a is None and b is None:
        return None
    if a is None:
        return frozenset(b or ())
    if b is None:
        return frozenset(a)
    return frozenset(a) & frozenset(b)
