"""Stages 10 and 13: exact response cache (only where the policy allows, never for streams)."""
from __future__ import annotations

from typing import Protocol

import orjson

from pipeline.cache import cache_key
from pipeline.context import RequestContext


class ResponseCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl_s: int) -> None: ...


class CacheLookupStage:
    name = "cache_lookup"
    phase = "tail"
    optional = True

    def __init__(self, cache: ResponseCache, on_result=None) -> None:  # type: ignore[no-untyped-def]
        self._cache = cache
        self._on_result = on_result or (lambda hit: None)

    async def __call__(self, ctx: RequestContext) -> None:
        if ctx.stream or ctx.route == "embeddings" or ctx.body is None or ctx.principal is None:
            return
        body = ctx.body
        if body.get("n", 1) != 1:
            return
        key = cache_key(ctx.principal.tenant_id, body)
        ctx.cache_key = key
        raw = await self._cache.get(key)
        if raw is None:
            ctx.response_headers["X-Casemate-Cache"] = "miss"
            self._on_result(False)
            return
        ctx.response = orjson.loads(raw)
        ctx.cache_hit = True
        ctx.response_headers["X-Casemate-Cache"] = "hit"
        self._on_result(True)


class CacheStoreStage:
    name = "cache_store"
    phase = "tail"
    optional = True

    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache

    async def __call__(self, ctx: RequestContext) -> None:
        if ctx.cache_hit or ctx.cache_key is None or ctx.response is None or ctx.policy is None:
            return
        choices = ctx.response.get("choices") or ()
        if not choices or any(c.get("finish_reason") not in ("stop", "length", "tool_calls") for c in choices):
            return
        await self._cache.set(ctx.cache_key, orjson.dumps(ctx.response), ctx.policy.cache_ttl_s)
