"""Encryption at rest for secrets kept in control-plane rows.

AES-256-GCM with a key derived from the server master secret through
`pipeline.secrets_box.derive_key(master, purpose)`. The associated data binds
each ciphertext to its row (tenant and row id), so a ciphertext copied into
another row does not decrypt. Blob layout: version byte, 12-byte nonce,
ciphertext with tag.

Rotation: open the store with the new master key and call
`Store.rotate_encryption(old_master)`, which re-encrypts every stored secret.
"""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipeline.secrets_box import derive_key

_VERSION = b"\x01"
PROVIDER_CREDENTIALS = "provider-credentials"
MFA_SECRETS = "mfa-secrets"


class DecryptionError(Exception):
    """The blob was not produced by this key for this row."""


class SecretBox:
    """Encrypts and decrypts row secrets for one purpose."""

    __slots__ = ("_aead",)

    def __init__(self, master: bytes, purpose: str) -> None:
        self._aead = AESGCM(derive_key(master, purpose))

    def seal(self, plaintext: bytes, aad: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, aad.encode())

    def open(self, blob: bytes, aad: str) -> bytes:
        if not blob or blob[:1] != _VERSION:
            raise DecryptionError("unknown ciphertext format")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], aad.encode())
        except InvalidTag as exc:
            raise DecryptionError("ciphertext does not match this key and row") from exc
