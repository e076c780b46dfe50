"""Access JWTs (EdDSA / Ed25519) with rotating signing keys, and opaque refresh tokens.

Signing keys are derived from the server master secret per rotation period
(`derive_key(master, "jwt-signing:<period>")`), so every worker and host signs
and verifies with the same keys without sharing state. The JWKS publishes the
previous, current and next period's public keys: tokens signed just before a
rotation still verify, and verifiers that cache the JWKS already know the next key.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pipeline.secrets_box import derive_key

ISSUER = "casemate"
AUDIENCE = "casemate-admin"
REFRESH_PREFIX = "cmr_"


class TokenError(Exception):
    """The presented token is not valid (reason in the message; never echo the token)."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    sub: str
    tid: str
    role: str
    permissions: frozenset[str]
    jti: str
    exp: int


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenIssuer:
    """Issues and verifies access tokens; makes and hashes refresh tokens."""

    def __init__(
        self, master: bytes, *, access_ttl_s: int = 3600, refresh_ttl_s: int = 30 * 86400,
        rotation_s: int = 30 * 86400,
    ) -> None:
        self._master = master
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.rotation_s = rotation_s
        self._keys: dict[int, Ed25519PrivateKey] = {}
        self._refresh_key = derive_key(master, "refresh-token-hash")

    def _period(self, now: float) -> int:
        return int(now // self.rotation_s)

    def _key(self, period: int) -> Ed25519PrivateKey:
        key = self._keys.get(period)
        if key is None:
            key = Ed25519PrivateKey.from_private_bytes(derive_key(self._master, f"jwt-signing:{period}"))
            if len(self._keys) > 8:
                self._keys.clear()
            self._keys[period] = key
        return key

    @staticmethod
    def _kid(period: int) -> str:
        return f"cm-ed25519-{period}"

    def issue_access(
        self, *, user_id: str, tenant_id: str, role: str, permissions: Iterable[str], now: float | None = None
    ) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds."""
        t = time.time() if now is None else now
        period = self._period(t)
        claims = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "tid": tenant_id, "role": role,
            "permissions": sorted(permissions), "iat": int(t), "nbf": int(t) - 5, "exp": int(t) + self.access_ttl_s,
            "jti": secrets.token_hex(12), "typ": "access",
        }
        token = jwt.encode(claims, self._key(period), algorithm="EdDSA", headers={"kid": self._kid(period)})
        return token, self.access_ttl_s

    def verify_access(self, token: str, *, now: float | None = None) -> AccessClaims:
        t = time.time() if now is None else now
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("malformed token") from exc
        kid = header.get("kid", "")
        current = self._period(t)
        period = next((p for p in (current, current - 1) if self._kid(p) == kid), None)
        if period is None or header.get("alg") != "EdDSA":
            raise TokenError("unknown signing key")
        try:
            claims = jwt.decode(
                token, self._key(period).public_key(), algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "tid", "role"], "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenError("invalid token") from exc
        # times are checked against `t` (not the wall clock inside PyJWT), with 5 s of leeway
        if not isinstance(claims["exp"], int) or claims["exp"] + 5 <= t:
            raise TokenError("token expired")
        if int(claims.get("nbf", 0)) - 5 > t:
            raise TokenError("token not yet valid")
        if claims.get("typ") != "access":
            raise TokenError("not an access token")
        return AccessClaims(
            sub=str(claims["sub"]), tid=str(claims["tid"]), role=str(claims["role"]),
            permissions=frozenset(claims.get("permissions") or ()), jti=str(claims.get("jti", "")),
            exp=int(claims["exp"]),
        )

    def jwks(self, *, now: float | None = None) -> dict[str, Any]:
        """Public keys of the previous, current and next rotation period."""
        current = self._period(time.time() if now is None else now)
        keys = []
        for period in (current - 1, current, current + 1):
            pub: Ed25519PublicKey = self._key(period).public_key()
            raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
            keys.append({"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": self._kid(period),
                         "alg": "EdDSA", "use": "sig"})
        return {"keys": keys}

    # ---- refresh tokens ------------------------------------------------------------------------

    def new_refresh(self) -> tuple[str, str]:
        """A new opaque refresh token and the hash to store."""
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        return token, self.hash_refresh(token)

    def hash_refresh(self, token: str) -> str:
        return hmac.new(self._refresh_key, token.encode(), hashlib.sha256).hexdigest()
