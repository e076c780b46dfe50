"""Server secret handling: derive purpose-bound subkeys from one master secret.

The master secret comes from `CASEMATE_SECRET_KEY` (or the data dir's `secret_key`
file, created with mode 0600 on first start). Every use gets its own subkey
(HKDF-SHA256 with a purpose label), so a leak of one derived key reveals nothing
about the others.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import string

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

API_KEY_PREFIX = "cm_live_"
_ALPHABET = string.ascii_letters + string.digits


def derive_key(master: bytes, purpose: str, length: int = 32) -> bytes:
    """HKDF-SHA256 subkey bound to `purpose` (e.g. "api-key-hash")."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(master)


def generate_api_key() -> str:
    """A new API key: `cm_live_` + 40 base62 characters (~238 bits)."""
    return API_KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(40))


def hash_api_key(hash_key: bytes, raw_key: str) -> str:
    """Keyed hash stored instead of the key (HMAC-SHA256, hex)."""
    return hmac.digest(hash_key, raw_key.encode(), "sha256").hex()


class ApiKeyHasher:
    """`hash_api_key` with the keyed state prepared once, for the per-request path.

    A one-shot `hmac.digest` makes OpenSSL 3 look up the MAC and digest implementations on every
    call; copying a prepared HMAC state skips that. The result is the same hex digest.
    """

    __slots__ = ("_prepared",)

    def __init__(self, hash_key: bytes) -> None:
        self._prepared = hmac.new(hash_key, digestmod=hashlib.sha256)

    def __call__(self, raw_key: str) -> str:
        h = self._prepared.copy()
        h.update(raw_key.encode())
        return h.hexdigest()


def mask_api_key(raw_key: str) -> str:
    """Shown after creation: prefix and last four characters only."""
    return f"{raw_key[:12]}…{raw_key[-4:]}"
