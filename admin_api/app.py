"""The admin app (default port 8081): `create_admin_app(store, settings)`.

Every route is declared once in a resource module (`admin_api/resources/`); this module wires
them with authentication, the request-id / problem middleware and the OpenAPI endpoints.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Any

import yaml
from aiohttp import web

from admin_api import dispatcher
from admin_api import transparency as transparency_log
from admin_api.authn import Authenticator
from admin_api.context import ISSUER, SETTINGS, STARTED_AT, STORE, THROTTLE, Ctx
from admin_api.http import REQUEST_ID, ApiError, conflict, not_found, problem_response
from admin_api.ids import new_id
from admin_api.openapi import build_openapi
from admin_api.resources import (
    activity,
    audit,
    auth,
    checks,
    keys,
    killswitch,
    notifications,
    operations,
    platform,
    policies,
    providers,
    restrictions,
    scim,
    tenants,
    transparency,
    trust,
    users,
    webhooks,
    ws,
)
from admin_api.routing import RouteTable
from admin_api.schemas import JSON_OBJECT
from admin_api.settings import AdminSettings
from admin_api.store import ConflictError, NotFoundError, Store
from admin_api.throttle import LoginThrottle
from admin_api.tokens import TokenIssuer

log = logging.getLogger("casemate.admin")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
OPENAPI_DOC: web.AppKey[dict[str, Any]] = web.AppKey("openapi_doc")
CHANGES_CHANNEL = "cm:changes"

docs = RouteTable()


@docs.route("GET", "/openapi.json", summary="This API's OpenAPI 3.1 document (JSON)", tag="openapi",
            envelope=False, response=JSON_OBJECT)
async def openapi_json(ctx: Ctx) -> Any:
    return ctx.request.app[OPENAPI_DOC]


@docs.route("GET", "/openapi.yaml", summary="This API's OpenAPI 3.1 document (YAML)", tag="openapi",
            envelope=False, media_type="application/yaml", response=JSON_OBJECT)
async def openapi_yaml(ctx: Ctx) -> Any:
    text = yaml.safe_dump(ctx.request.app[OPENAPI_DOC], sort_keys=False, allow_unicode=True)
    return web.Response(text=text, content_type="application/yaml")


def all_routes() -> RouteTable:
    table = RouteTable()
    for module in (auth, tenants, users, keys, restrictions, policies, providers, killswitch, activity, operations,
                   platform, audit, transparency, checks, webhooks, scim, notifications, ws,
                   trust):
        table.include(module.routes)
    table.include(docs)
    return table


def _status_problem(status: int, detail: str) -> ApiError:
    titles = {404: ("Not found", "not-found", "ADM-404"), 405: ("Method not allowed", "method-not-allowed", "ADM-405"),
              413: ("Request body too large", "payload-too-large", "ADM-413")}
    title, slug, code = titles.get(status, ("Request refused", "refused", f"ADM-{status}"))
    return ApiError(status, detail, code=code, title=title, slug=slug)


@web.middleware
async def _conventions(request: web.Request, handler: Any) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    request[REQUEST_ID] = incoming if _REQUEST_ID.match(incoming) else new_id()
    try:
        response = await handler(request)
    except ApiError as err:
        response = problem_response(request, err)
    except NotFoundError as exc:
        response = problem_response(request, not_found(str(exc).replace(" not found", "") or "resource"))
    except ConflictError:
        response = problem_response(request, conflict("a resource with these values already exists"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = {404: "no such route", 405: f"method {request.method} is not allowed here",
                  413: "the request body is too large"}.get(exc.status, exc.reason)
        problem = _status_problem(exc.status, detail)
        if exc.status == 405 and "Allow" in exc.headers:
            problem.headers["Allow"] = exc.headers["Allow"]
        response = problem_response(request, problem)
    except Exception:
        log.exception("admin request %s %s failed", request.method, request.path)
        response = problem_response(request, ApiError(500, "internal error; the request id identifies it in the logs",
                                                      code="ADM-500", title="Internal error", slug="internal"))
    response.headers["X-Request-ID"] = request[REQUEST_ID]
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _from_runtime(runtime: Any) -> tuple[Store, AdminSettings]:
    """Settings for an admin app sharing a process with the proxy `Runtime`."""
    notify = None
    redis = getattr(runtime, "redis", None)
    if redis is not None:
        async def notify() -> None:
            await redis.publish(CHANGES_CHANNEL, "admin")
    conf = getattr(runtime, "settings", None)
    settings = AdminSettings(
        master_key=runtime.master, runtime=runtime, notify_change=notify,
        allow_registration=bool(getattr(conf, "allow_registration", False)),
    )
    return runtime.store, settings


def create_admin_app(store: Store | Any, settings: AdminSettings | None = None) -> web.Application:
    """The admin application.

    Pass a `Store` and `AdminSettings`; or pass the proxy's `Runtime` alone (it has the store,
    the master secret, Redis and the cache) when both apps run in one process.
    """
    if settings is None:
        store, settings = _from_runtime(store)
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_conventions])
    issuer = TokenIssuer(settings.master_key, access_ttl_s=settings.access_ttl_s,
                         refresh_ttl_s=settings.refresh_ttl_s)
    app[STORE] = store
    app[SETTINGS] = settings
    app[ISSUER] = issuer
    app[THROTTLE] = LoginThrottle(settings.login_attempts, settings.login_window_s,
                                  limits={"ip": settings.login_attempts * 10})
    app[STARTED_AT] = time.monotonic()
    table = all_routes()
    table.install(app, Authenticator(store, settings, issuer))
    scim.install_protocol(app)
    app[OPENAPI_DOC] = build_openapi(table.routes, version=settings.version)
    dispatcher.install(app, store, settings, transparency_log.install(app, store, settings))
    return app


__all__ = ["AdminSettings", "all_routes", "create_admin_app"]
