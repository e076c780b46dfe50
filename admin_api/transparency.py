"""The transparency log service: signed tree heads, inclusion and consistency proofs.

The signed message format and the reference tree math live in `casemate_verify` (the standalone
verifier). Heads and proofs are computed by `admin_api.tlog_tree` from the log's stored complete
subtrees, O(log n) rows and hashes each, byte-identical to the reference functions.

Signing key: Ed25519, derived from the server master secret with the label
`transparency-log/v{N}` (`AdminSettings.transparency_key_version`, default 1). Rotation: raise
the version and restart every process; new heads are signed with the new key, and
`GET /api/v1/transparency-log/keys` keeps listing every earlier version's public key, so heads
signed before the rotation still verify. Rotating the master secret changes every derived key:
publish the old public keys before doing it.
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from admin_api import tlog_tree
from admin_api.settings import AdminSettings
from admin_api.store import Store
from casemate_verify.sth import TreeHead, key_id_of, sth_message
from pipeline.secrets_box import derive_key


@dataclass(frozen=True, slots=True)
class SigningKey:
    version: int
    key_id: str
    public_key: bytes
    private: Ed25519PrivateKey

    def describe(self, current: bool) -> dict[str, Any]:
        return {"key_id": self.key_id, "version": self.version, "algorithm": "Ed25519", "current": current,
                "public_key": base64.b64encode(self.public_key).decode()}


def signing_key(master: bytes, version: int) -> SigningKey:
    private = Ed25519PrivateKey.from_private_bytes(derive_key(master, f"transparency-log/v{version}"))
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return SigningKey(version, key_id_of(public), public, private)


class TransparencyLog:
    """Heads and proofs over the per-tenant logs kept by the store."""

    def __init__(self, store: Store, master: bytes, *, key_version: int = 1, max_head_age_s: float = 300.0) -> None:
        if key_version < 1:
            raise ValueError("transparency key version starts at 1")
        self._store = store
        self._keys = [signing_key(master, v) for v in range(1, key_version + 1)]
        self._max_age_ms = int(max_head_age_s * 1000)

    @property
    def current_key(self) -> SigningKey:
        return self._keys[-1]

    def keys(self) -> list[dict[str, Any]]:
        """Every public key that signed or signs heads, newest last."""
        return [k.describe(k is self.current_key) for k in self._keys]

    def _nodes(self, log_id: str) -> tlog_tree.NodeFetch:
        return partial(self._store.tree_nodes, log_id)

    async def sign_head(self, log_id: str) -> TreeHead:
        """Sign the log as it stands now and keep the head."""
        size = await self._store.log_size(log_id)
        return await self._sign(log_id, size, await tlog_tree.root(self._nodes(log_id), size))

    async def _sign(self, log_id: str, size: int, root: bytes) -> TreeHead:
        key = self.current_key
        ts = int(time.time() * 1000)
        signature = key.private.sign(sth_message(log_id, size, root, ts))
        head = TreeHead(log_id, size, root, ts, key.key_id, signature)
        await self._store.save_tree_head({"log_id": log_id, "tree_size": size, "root_hash": root, "timestamp": ts,
                                          "key_id": key.key_id, "signature": signature})
        return head

    async def head(self, log_id: str) -> TreeHead:
        """The newest head if it covers the whole log, is recent and uses the current key; else a new one."""
        size = await self._store.log_size(log_id)
        saved = await self._store.latest_tree_head(log_id)
        if (saved is not None and saved["tree_size"] == size and saved["key_id"] == self.current_key.key_id
                and saved["timestamp"] >= int(time.time() * 1000) - self._max_age_ms):
            return TreeHead(**saved)
        return await self.sign_head(log_id)

    async def head_of_size(self, log_id: str, size: int) -> TreeHead | None:
        """A head signed earlier for exactly `size` leaves, or None."""
        saved = await self._store.latest_tree_head(log_id, size)
        return None if saved is None else TreeHead(**saved)

    async def inclusion(self, log_id: str, index: int, tree_size: int) -> list[bytes]:
        """The audit path of leaf `index` in the tree of `tree_size` leaves (IndexError when outside)."""
        if tree_size > await self._store.log_size(log_id):
            raise IndexError("tree size beyond the log")
        return await tlog_tree.inclusion(self._nodes(log_id), index, tree_size)

    async def consistency(self, log_id: str, first: int, second: int) -> list[bytes]:
        """The proof that the tree of `first` leaves is a prefix of the tree of `second` (IndexError when outside)."""
        if first > second or second > await self._store.log_size(log_id):
            raise IndexError("tree sizes outside the log")
        return await tlog_tree.consistency(self._nodes(log_id), first, second)


TLOG: web.AppKey[TransparencyLog] = web.AppKey("transparency_log", TransparencyLog)


def install(app: web.Application, store: Store, settings: AdminSettings) -> TransparencyLog:
    """Give the admin app its transparency log (before the app starts)."""
    tlog = app[TLOG] = TransparencyLog(store, settings.master_key, key_version=settings.transparency_key_version,
                                       max_head_age_s=settings.sth_max_age_s)
    return tlog
