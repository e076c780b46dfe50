"""Upstream providers: credentials go in, never come out; connectivity test; model price catalogue."""
from __future__ import annotations

import time
from typing import Any

import aiohttp

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.http import conflict
from admin_api.resources.common import path_id
from admin_api.routing import Result, RouteTable
from admin_api.schemas import MODEL_PRICE, NAME, PROVIDER, PROVIDER_KINDS, array, obj
from admin_api.store import ConflictError

routes = RouteTable()

# an http(s) URL with a host and no credentials in it (the API key goes in `credentials`, encrypted)
URL = {"type": "string", "pattern": "^https?://[^\\s/?#@]+([/?#][^\\s]*)?$", "maxLength": 2000}
CREDENTIALS = {"type": "object", "minProperties": 1, "maxProperties": 16,
               "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 4096},
               "description": "Secrets for the upstream (e.g. api_key); write-only."}
SETTINGS = obj({"api_version": {"type": "string", "maxLength": 40},
                "timeout_s": {"type": "number", "minimum": 0.1, "maximum": 600},
                "headers": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 1000},
                            "maxProperties": 32}})
_FIELDS = {"base_url": URL, "models": {**array(MODEL_PRICE), "maxItems": 1000}, "settings": SETTINGS,
           "status": {"type": "string", "enum": ["active", "disabled"]}, "credentials": CREDENTIALS}
PROVIDER_CREATE = obj({"name": NAME, "kind": {"type": "string", "enum": PROVIDER_KINDS}, **_FIELDS},
                      ("name", "kind", "base_url"))
PROVIDER_UPDATE = obj({"name": NAME, **_FIELDS}, min_properties=1)
TEST_RESULT = obj({"ok": {"type": "boolean"}, "status": {"type": ["integer", "null"]},
                   "latency_ms": {"type": "number"}, "error": {"type": ["string", "null"]},
                   "models": {"type": ["integer", "null"]}}, ("ok", "latency_ms"))


def probe_request(provider: dict[str, Any], credentials: dict[str, Any] | None) -> tuple[str, dict[str, str]]:
    """URL and headers of a cheap authenticated request (list models) for this provider kind."""
    base = provider["base_url"].rstrip("/")
    secret = (credentials or {}).get("api_key", "")
    headers = dict(provider["settings"].get("headers") or {})
    if provider["kind"] == "azure":
        version = provider["settings"].get("api_version", "2024-06-01")
        headers["api-key"] = secret
        return f"{base}/openai/models?api-version={version}", headers
    if provider["kind"] == "anthropic":
        headers.update({"x-api-key": secret, "anthropic-version": "2023-06-01"})
        return (f"{base}/models" if base.endswith("/v1") else f"{base}/v1/models"), headers
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return f"{base}/models", headers


@routes.route("GET", "/api/v1/providers", summary="Upstream providers (credentials never shown)",
              tag="providers", permission="providers:read", paginated=True, response=array(PROVIDER))
async def list_providers(ctx: Ctx) -> Any:
    return await ctx.store.list_providers(ctx.tenant_id, limit=ctx.limit, after=ctx.after)


@routes.route("POST", "/api/v1/providers", summary="Add a provider; credentials are encrypted at rest",
              tag="providers", permission="providers:write", body=PROVIDER_CREATE, response=PROVIDER, status=201)
async def create_provider(ctx: Ctx) -> Any:
    body = dict(ctx.body)
    credentials = body.pop("credentials", None)
    try:
        provider = await ctx.store.create_provider(ctx.tenant_id, body.pop("name"), body.pop("kind"),
                                                   credentials=credentials, **body)
    except ConflictError:
        raise conflict("a provider with this name exists") from None
    await ctx.changed()
    await audit(ctx, "provider.create", "provider", provider["id"], after=provider)
    return Result(provider, status=201)


@routes.route("GET", "/api/v1/providers/{provider_id}", summary="One provider", tag="providers",
              permission="providers:read", response=PROVIDER)
async def get_provider(ctx: Ctx) -> Any:
    return await ctx.store.get_provider(ctx.tenant_id, path_id(ctx, "provider_id", "provider"))


@routes.route("PATCH", "/api/v1/providers/{provider_id}",
              summary="Change a provider; new credentials replace the old ones", tag="providers",
              permission="providers:write", body=PROVIDER_UPDATE, response=PROVIDER)
async def update_provider(ctx: Ctx) -> Any:
    pid = path_id(ctx, "provider_id", "provider")
    before = await ctx.store.get_provider(ctx.tenant_id, pid)
    body = dict(ctx.body)
    credentials = body.pop("credentials", None)
    try:
        after = await ctx.store.update_provider(ctx.tenant_id, pid, credentials=credentials, **body)
    except ConflictError:
        raise conflict("a provider with this name exists") from None
    await ctx.changed()
    await audit(ctx, "provider.update", "provider", pid, before=before, after=after,
                details={"credentials_replaced": credentials is not None})
    return after


@routes.route("DELETE", "/api/v1/providers/{provider_id}", summary="Delete a provider", tag="providers",
              permission="providers:write", status=204)
async def delete_provider(ctx: Ctx) -> Any:
    pid = path_id(ctx, "provider_id", "provider")
    before = await ctx.store.get_provider(ctx.tenant_id, pid)
    await ctx.store.delete_provider(ctx.tenant_id, pid)
    await ctx.changed()
    await audit(ctx, "provider.delete", "provider", pid, before=before)
    return Result(status=204)


@routes.route("POST", "/api/v1/providers/{provider_id}/test",
              summary="Check connectivity and credentials (lists the upstream's models)", tag="providers",
              permission="providers:write", response=TEST_RESULT)
async def test_provider(ctx: Ctx) -> Any:
    pid = path_id(ctx, "provider_id", "provider")
    provider = await ctx.store.get_provider(ctx.tenant_id, pid)
    credentials = await ctx.store.get_provider_credentials(ctx.tenant_id, pid)
    url, headers = probe_request(provider, credentials)
    timeout = aiohttp.ClientTimeout(total=float(provider["settings"].get("timeout_s")
                                                or ctx.settings.provider_test_timeout_s))
    started = time.perf_counter()
    result: dict[str, Any] = {"ok": False, "status": None, "error": None, "models": None}
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(url, headers=headers, allow_redirects=False) as resp:
            result["status"] = resp.status
            if resp.status == 200:
                doc = await resp.json(content_type=None)
                data = doc.get("data") if isinstance(doc, dict) else None
                result["models"] = len(data) if isinstance(data, list) else None
                result["ok"] = True
            else:
                result["error"] = f"upstream answered HTTP {resp.status}"
    except TimeoutError:
        result["error"] = "timed out"
    except (aiohttp.ClientError, ValueError) as exc:
        result["error"] = f"{exc.__class__.__name__}"
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    await audit(ctx, "provider.test", "provider", pid, outcome="success" if result["ok"] else "failure",
                details={"status": result["status"], "error": result["error"]})
    return result
