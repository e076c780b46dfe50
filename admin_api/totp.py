"""TOTP (RFC 6238, SHA-1, 6 digits, 30 s steps) for optional login MFA."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import time
from urllib.parse import quote


def new_secret() -> str:
    """A 160-bit secret, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(os.urandom(20)).decode().rstrip("=")


def _code(secret: str, counter: int) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def code_at(secret: str, when: float) -> str:
    return _code(secret, int(when // 30))


def verify(secret: str, code: str, *, now: float | None = None, window: int = 1) -> bool:
    """True when `code` matches the current step or one step either side (clock drift)."""
    if not code.isdigit() or len(code) != 6:
        return False
    step = int((time.time() if now is None else now) // 30)
    return any(hmac.compare_digest(_code(secret, step + d), code) for d in range(-window, window + 1))


def provisioning_uri(secret: str, account: str, issuer: str = "Casemate") -> str:
    return f"otpauth://totp/{quote(issuer)}:{quote(account)}?secret={secret}&issuer={quote(issuer)}"
