"""Agent JWTs (EdDSA / Ed25519), issued per agent by the control plane, verified by the proxy.

The signing key is `derive_key(master, "agent-jwt")`, so every worker and host verifies
without shared state. Claims: iss "casemate", aud "casemate-agent", sub (agent id), tid
(tenant), typ "agent", iat, exp, jti. Sent as `X-Casemate-Agent-Token`.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.secrets_box import derive_key

ISSUER = "casemate"
AUDIENCE = "casemate-agent"
MAX_TTL_S = 365 * 86400


class AgentTokenError(Exception):
    """The agent token is not valid (the reason is safe to show; the token never is)."""


@dataclass(frozen=True, slots=True)
class AgentClaims:
    agent_id: str
    tenant_id: str
    jti: str
    exp: int


class AgentTokens:
    def __init__(self, master: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(derive_key(master, "agent-jwt"))
        self._public = self._key.public_key()

    def issue(self, *, agent_id: str, tenant_id: str, ttl_s: int = 30 * 86400, now: float | None = None) -> str:
        if not 1 <= ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl_s must be between 1 and {MAX_TTL_S}")
        t = int(time.time() if now is None else now)
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": agent_id, "tid": tenant_id, "typ": "agent",
                  "iat": t, "exp": t + ttl_s, "jti": secrets.token_hex(12)}
        return jwt.encode(claims, self._key, algorithm="EdDSA")

    def verify(self, token: str, *, now: float | None = None) -> AgentClaims:
        t = time.time() if now is None else now
        try:
            claims = jwt.decode(token, self._public, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "sub", "tid"], "verify_exp": False})
        except jwt.PyJWTError as exc:
            raise AgentTokenError("invalid agent token") from exc
        if claims.get("typ") != "agent":
            raise AgentTokenError("not an agent token")
        if not isinstance(claims["exp"], int) or claims["exp"] + 5 <= t:
            raise AgentTokenError("agent token expired")
        return AgentClaims(agent_id=str(claims["sub"]), tenant_id=str(claims["tid"]), jti=str(claims.get("jti", "")),
                           exp=int(claims["exp"]))
