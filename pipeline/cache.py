"""Exact response cache keyed by tenant + normalised request.

In-process: a cachetools LRU bounded by entries; each value carries its expiry
(per-item TTL from the policy) and an expired entry is dropped when it is next read
(cheaper than a TLRU's expiry heap, which costs ~12 µs per stored response against ~3). Shared: Redis GET/SET with EX when `CASEMATE_REDIS_URL` is set.
Values are the serialised upstream response (bytes), stored before PII
placeholders are restored, so the cache never holds raw prompt PII.
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import orjson
from cachetools import LRUCache

log = logging.getLogger("casemate.cache")

# Request fields that do not change the answer and are left out of the key.
_IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store"})


def cache_key(tenant_id: str, body: dict[str, Any]) -> str:
    norm = {k: v for k, v in body.items() if k not in _IGNORED_FIELDS}
    digest = hashlib.sha256(orjson.dumps(norm, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{tenant_id}:{norm.get('model', '')}:{digest}"


class LocalCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._c: LRUCache[str, tuple[float, bytes]] = LRUCache(maxsize=max_entries)
        self.hits = 0
        self.misses = 0

    async def get(self, key: str) -> bytes | None:
        item = self._c.get(key)
        if item is None or item[0] <= time.monotonic():
            if item is not None:
                self._c.pop(key, None)          # expired: drop it now
            self.misses += 1
            return None
        self.hits += 1
        return item[1]

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self._c[key] = (time.monotonic() + ttl_s, value)

    async def purge(self, tenant_id: str | None = None, model: str | None = None) -> int:
        victims = [k for k in list(self._c.keys()) if _matches(k, tenant_id, model)]
        for k in victims:
            self._c.pop(k, None)
        return len(victims)

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        live = sum(1 for expires, _ in list(self._c.values()) if expires > now)
        return {"backend": "memory", "entries": live, "hits": self.hits, "misses": self.misses}


def _matches(key: str, tenant_id: str | None, model: str | None) -> bool:
    t, m, _ = key.split(":", 2)
    return (tenant_id is None or t == tenant_id) and (model is None or m == model)


class RedisCache:
    def __init__(self, redis, prefix: str = "cm:cache:") -> None:  # type: ignore[no-untyped-def]
        self._r = redis
        self._p = prefix
        self.hits = 0
        self.misses = 0

    async def get(self, key: str) -> bytes | None:
        try:
            v = await self._r.get(self._p + key)
        except Exception:  # noqa: BLE001 - a cache outage is a miss, never an error
            if log.isEnabledFor(logging.WARNING):
                log.warning("cache backend failed on get")
            return None
        if v is None:
            self.misses += 1
        else:
            self.hits += 1
        return v

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        try:
            await self._r.set(self._p + key, value, ex=ttl_s)
        except Exception:  # noqa: BLE001
            if log.isEnabledFor(logging.WARNING):
                log.warning("cache backend failed on set")

    async def purge(self, tenant_id: str | None = None, model: str | None = None) -> int:
        pattern = self._p + (tenant_id or "*") + ":" + (model or "*") + ":*"
        n = 0
        async for k in self._r.scan_iter(match=pattern, count=500):
            n += await self._r.delete(k)
        return n

    def stats(self) -> dict[str, Any]:
        return {"backend": "redis", "hits": self.hits, "misses": self.misses}
