"""Operations: response cache, process health and diagnostics."""
from __future__ import annotations

import asyncio
import resource
import time
from collections import deque
from typing import Any

import aiohttp
from aiohttp import web

from admin_api.audit import audit
from admin_api.context import STARTED_AT, Ctx
from admin_api.http import ApiError, forbidden, now_rfc3339
from admin_api.resources.providers import probe_request
from admin_api.roles import PLATFORM_ADMIN
from admin_api.routing import RouteTable
from admin_api.schemas import JSON_OBJECT, array, obj

routes = RouteTable()

PURGE = obj({"model": {"type": "string", "minLength": 1, "maxLength": 200},
             "all_tenants": {"type": "boolean", "description": "Purge every tenant's entries (platform:admin)."}})
PURGED = obj({"purged": {"type": "integer"}}, ("purged",))
HEALTH = obj({"status": {"type": "string"}, "uptime_s": {"type": "number"}, "max_rss_mb": {"type": "number"},
              "queues": JSON_OBJECT, "store": {"type": "string"}}, ("status", "uptime_s", "store"))
CHECK = obj({"name": {"type": "string"}, "ok": {"type": "boolean"}, "latency_ms": {"type": ["number", "null"]},
             "detail": {"type": ["string", "null"]}}, ("name", "ok"))
DIAGNOSTICS = obj({"ok": {"type": "boolean"}, "mode": {"type": "string"}, "ts": {"type": "string"},
                   "checks": array(CHECK)}, ("ok", "mode", "checks"))
DIAG_QUERY = {"mode": {"type": "string", "enum": ["quick", "full"], "default": "quick"}}

_history: deque[dict[str, Any]] = deque(maxlen=50)


def _cache(ctx: Ctx) -> Any:
    cache = getattr(ctx.settings.runtime, "cache", None)
    if cache is None:
        raise ApiError(503, "the response cache is not running in this process", code="ADM-503",
                       title="Not available", slug="not-available")
    return cache


@routes.route("GET", "/api/v1/cache/stats", summary="Response cache statistics", tag="cache",
              permission="cache:read", response=JSON_OBJECT, problems=(503,))
async def cache_stats(ctx: Ctx) -> Any:
    return _cache(ctx).stats()


@routes.route("POST", "/api/v1/cache/purge", summary="Purge cached responses (this organization, or a model)",
              tag="cache", permission="cache:write", body=PURGE, response=PURGED, problems=(503,))
async def cache_purge(ctx: Ctx) -> Any:
    cache = _cache(ctx)
    everyone = ctx.body.get("all_tenants", False)
    if everyone and PLATFORM_ADMIN not in ctx.me.permissions:
        raise forbidden(f"missing permission {PLATFORM_ADMIN}")
    count = await cache.purge(tenant_id=None if everyone else ctx.tenant_id, model=ctx.body.get("model"))
    await audit(ctx, "cache.purge", "cache", None, details={"model": ctx.body.get("model"),
                                                             "all_tenants": everyone, "purged": count})
    return {"purged": count}


async def _timed(name: str, probe: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe, timeout=5.0)
        return {"name": name, "ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "detail": detail}
    except Exception as exc:  # noqa: BLE001 - a diagnostic reports every failure instead of raising
        return {"name": name, "ok": False, "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "detail": exc.__class__.__name__}


@routes.route("GET", "/api/v1/admin/health", summary="Process health: uptime, memory, queue depths",
              tag="operations", permission=PLATFORM_ADMIN, response=HEALTH)
async def admin_health(ctx: Ctx) -> Any:
    runtime = ctx.settings.runtime
    queues: dict[str, Any] = {}
    writer = getattr(runtime, "audit", None)
    if writer is not None:
        queues["audit"] = writer.depth()
        queues["audit_journal_bytes"] = writer.journal_bytes()
    store = await _timed("store", ctx.store.ping())
    return {
        "status": "ok" if store["ok"] else "degraded",
        "uptime_s": round(time.monotonic() - ctx.request.app[STARTED_AT], 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "queues": queues,
        "store": "ok" if store["ok"] else "down",
    }


async def _clock_skew(ctx: Ctx) -> str:
    if ctx.store.dialect != "postgres":
        return "not measured (embedded database shares this clock)"
    db_now = await ctx.store.db.fetchval("SELECT extract(epoch FROM clock_timestamp())")
    return f"{(float(db_now) - time.time()) * 1000:.1f} ms"


async def _provider_probe(ctx: Ctx, provider: dict[str, Any]) -> str:
    creds = await ctx.store.get_provider_credentials(ctx.tenant_id, provider["id"])
    url, headers = probe_request(provider, creds)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=4)) as s, \
            s.get(url, headers=headers, allow_redirects=False) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        return f"HTTP {resp.status}"


@routes.route("GET", "/api/v1/diagnostics", summary="Check the store, Redis, providers and clock skew",
              tag="operations", permission=PLATFORM_ADMIN, query=DIAG_QUERY, response=DIAGNOSTICS)
async def diagnostics(ctx: Ctx) -> Any:
    async def store_probe() -> str:
        await ctx.store.ping()
        return ctx.store.dialect

    checks = [_timed("store", store_probe()), _timed("clock_skew", _clock_skew(ctx))]
    redis = getattr(ctx.settings.runtime, "redis", None)
    if redis is not None:
        async def redis_probe() -> str:
            await redis.ping()
            return "PONG"
        checks.append(_timed("redis", redis_probe()))
    if ctx.query["mode"] == "full":
        providers = await ctx.store.list_providers(ctx.tenant_id, limit=50)
        checks += [_timed(f"provider:{p['name']}", _provider_probe(ctx, p)) for p in providers.items
                   if p["status"] == "active"]
    results = list(await asyncio.gather(*checks))
    report = {"ok": all(c["ok"] for c in results), "mode": ctx.query["mode"], "ts": now_rfc3339(),
              "checks": results}
    _history.append(report)
    return report


@routes.route("GET", "/api/v1/diagnostics/history", summary="The last 50 diagnostics reports of this process",
              tag="operations", permission=PLATFORM_ADMIN, response=array(DIAGNOSTICS))
async def diagnostics_history(ctx: Ctx) -> Any:
    return list(reversed(_history))


@routes.route("GET", "/metrics", summary="Prometheus metrics of this process (all workers in multiprocess mode)",
              tag="operations", public=True, envelope=False, media_type="text/plain", response={"type": "string"})
async def metrics(ctx: Ctx) -> Any:
    """The same exposition the proxy serves on its /metrics, so an admin-only process (`--role admin`)
    exposes its webhook and notification metrics too."""
    from admin_api import metrics as _admin_metrics  # noqa: F401 - registers the admin metrics
    from proxy.metrics import render

    body, ctype = render()
    return web.Response(body=body, headers={"Content-Type": ctype})
