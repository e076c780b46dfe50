"""Declare a route once; the declaration drives validation, permissions and the OpenAPI document.

    table = RouteTable()

    @table.route("POST", "/keys", summary="Create an API key", permission="keys:write",
                 body=KEY_CREATE, response=KEY_CREATED, status=201, tag="keys")
    async def create_key(ctx: Ctx) -> Any: ...

Schemas are JSON Schema (the 2020-12 subset OpenAPI 3.1 uses), compiled with fastjsonschema
once when the app is built. A failed check answers 400 and names the field.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import fastjsonschema
import orjson
from aiohttp import web

from admin_api.audit import audit
from admin_api.context import SETTINGS, Ctx
from admin_api.http import (
    ApiError,
    bad_request,
    decode_cursor,
    dumps,
    encode_cursor,
    envelope_response,
    forbidden,
)
from admin_api.store import Page

log = logging.getLogger("casemate.admin")

Handler = Callable[[Ctx], Awaitable[Any]]
Authenticate = Callable[[web.Request], Awaitable[Any]]

PAGE_QUERY: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50, "description": "Page size."},
    "cursor": {"type": "string", "maxLength": 200, "description": "Opaque cursor from `pagination.next_cursor`."},
}


@dataclass(frozen=True, slots=True)
class Result:
    """A handler's answer when it is not a plain 200 with data."""

    data: Any = None
    status: int = 200
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    permission: str | None = None            # None: any authenticated caller
    public: bool = False                     # no authentication at all
    users_only: bool = False                 # API keys may not call it
    body: dict[str, Any] | None = None
    response: dict[str, Any] | None = None   # schema of `data` (or the raw body when envelope=False)
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: int = 200
    paginated: bool = False
    envelope: bool = True
    description: str = ""
    media_type: str = "application/json"     # of the success response
    problems: tuple[int, ...] = ()           # statuses beyond the ones implied by the declaration
    body_check: Callable[[Any], Any] | None = None
    query_check: Callable[[Any], Any] | None = None
    response_check: Callable[[Any], Any] | None = None

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


class RouteTable:
    """All routes of the admin app, in declaration order."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self, method: str, path: str, *, summary: str, tag: str, permission: str | None = None,
        public: bool = False, users_only: bool = False, body: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None, query: dict[str, dict[str, Any]] | None = None,
        status: int = 200, paginated: bool = False, envelope: bool = True, description: str = "",
        media_type: str = "application/json", problems: tuple[int, ...] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            q = dict(query or {})
            if paginated:
                q = {**PAGE_QUERY, **q}
            self.routes.append(Route(
                method=method, path=path, handler=handler, summary=summary, tag=tag, permission=permission,
                public=public, users_only=users_only, body=body, response=response, query=q, status=status,
                paginated=paginated, envelope=envelope, description=description or (handler.__doc__ or "").strip(),
                media_type=media_type, problems=problems,
            ))
            return handler
        return register

    def include(self, other: RouteTable) -> None:
        """Add another table's routes (each resource module keeps its own table)."""
        self.routes.extend(other.routes)

    def install(self, app: web.Application, authenticate: Authenticate) -> None:
        """Compile every schema (once per process) and add the routes to `app`."""
        for route in self.routes:
            if route.body is not None:
                route.body_check = _compiled(route.body)
            if route.query:
                route.query_check = _compiled({
                    "type": "object", "properties": route.query, "additionalProperties": False,
                })
            if route.response is not None:
                route.response_check = _compiled(route.response)
            app.router.add_route(route.method, route.path, _endpoint(route, authenticate))


_COMPILED: dict[bytes, Callable[[Any], Any]] = {}


def _compiled(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """fastjsonschema's validator for `schema`, compiled once per distinct schema: compiling every
    route's schema costs ~1 s, and an app (a test's, a worker's) may be built many times."""
    try:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except TypeError:                     # not plain JSON: compile it as it is, uncached
        return fastjsonschema.compile(schema)
    check = _COMPILED.get(key)
    if check is None:
        check = _COMPILED[key] = fastjsonschema.compile(schema)
    return check


# ---- request handling ---------------------------------------------------------------------------


def _field_of(exc: fastjsonschema.JsonSchemaValueException, root: str) -> str:
    path = [str(p) for p in (exc.path or [])[1:]]
    if exc.rule == "required" and isinstance(exc.value, dict) and isinstance(exc.rule_definition, list):
        missing = [k for k in exc.rule_definition if k not in exc.value]
        path += missing[:1]
    elif exc.rule == "additionalProperties" and isinstance(exc.value, dict) and isinstance(exc.definition, dict):
        known = set((exc.definition.get("properties") or {}).keys())
        extra = sorted(k for k in exc.value if k not in known)
        path += extra[:1]
    return ".".join(path) if path else root


def _validation_error(exc: fastjsonschema.JsonSchemaValueException, root: str) -> ApiError:
    where = _field_of(exc, root)
    message = exc.message
    if message.startswith("data"):
        message = message.split(" ", 1)[1] if " " in message else message
    if exc.rule == "additionalProperties":
        message = "is not an accepted field"
    elif exc.rule == "required":
        message = "is required"
    detail = f"{where}: {message}"
    return bad_request(detail, errors=[{"field": where, "message": message}])


def _nul_field(value: Any, path: str) -> str | None:
    """Where a NUL character sits in a JSON value (databases cannot store it in text), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if "\x00" in k:
                return where
            found = _nul_field(v, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _nul_field(v, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def _refuse_nul(value: Any, root: str) -> None:
    where = _nul_field(value, "")
    if where is not None:
        where = where or root
        raise bad_request(f"{where}: must not contain NUL characters", field=where)


def _coerce(raw: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw                       # left as a string: the schema check names the parameter
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw.lower(), raw)
    return raw


def _parse_query(route: Route, request: web.Request, ctx: Ctx) -> None:
    if not route.query:
        if request.query:
            name = next(iter(request.query))
            raise bad_request(f"{name}: is not an accepted query parameter", field=name)
        return
    _refuse_nul(dict(request.query), "query")
    values: dict[str, Any] = {}
    for name, raw in request.query.items():
        schema = route.query.get(name)
        values[name] = raw if schema is None else _coerce(raw, schema)
    assert route.query_check is not None
    try:
        route.query_check(values)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _validation_error(exc, "query") from None
    for name, schema in route.query.items():
        if name not in values and "default" in schema:
            values[name] = schema["default"]
    if route.paginated:
        ctx.limit = int(values.pop("limit"))
        cursor = values.pop("cursor", None)
        ctx.after = None if cursor is None else decode_cursor(cursor)
    ctx.query = values


async def _parse_body(route: Route, request: web.Request, ctx: Ctx) -> None:
    raw = await request.read()
    if not raw.strip():
        doc: Any = {}
    else:
        ctype = request.content_type
        if ctype != "application/json" and not ctype.endswith("+json"):
            raise bad_request("the body must be application/json", field="body")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise bad_request("the body is not valid JSON", field="body") from None
    _refuse_nul(doc, "body")
    assert route.body_check is not None
    try:
        route.body_check(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _validation_error(exc, "body") from None
    ctx.body = doc


def _render(route: Route, request: web.Request, ctx: Ctx, result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    status, headers, pagination = route.status, None, None
    if isinstance(result, Result):
        status, headers, result = result.status, result.headers, result.data
    if isinstance(result, Page):
        pagination = {
            "limit": ctx.limit,
            "has_more": result.has_more,
            "total_count": result.total_count,
            "next_cursor": encode_cursor(result.next_after) if result.next_after else None,
        }
        result = result.items
    if route.response_check is not None and request.app[SETTINGS].validate_responses and status != 204:
        try:
            route.response_check(orjson.loads(dumps(result)))
        except fastjsonschema.JsonSchemaValueException as exc:
            log.error("response of %s %s breaks its schema: %s", route.method, route.path, exc.message)
            raise
    if not route.envelope:
        return web.Response(status=status, body=dumps(result), content_type="application/json", headers=headers)
    return envelope_response(request, result, status=status, pagination=pagination, headers=headers)


async def _audit_denied(ctx: Ctx, route: Route) -> None:
    await audit(ctx, "access.denied", route.tag, None, outcome="denied",
                details={"operation": route.operation_id, "permission": route.permission})


def _endpoint(route: Route, authenticate: Authenticate) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        ctx = Ctx(request)
        if not route.public:
            principal = await authenticate(request)
            ctx.principal = principal
            if route.users_only and principal.kind != "user":
                raise forbidden("this operation needs a signed-in user, not an API key")
            if route.permission is not None and route.permission not in principal.permissions:
                await _audit_denied(ctx, route)
                raise forbidden(f"missing permission {route.permission}")
        _refuse_nul(dict(request.match_info), "path")
        _parse_query(route, request, ctx)
        if route.body is not None:
            await _parse_body(route, request, ctx)
        return _render(route, request, ctx, await route.handler(ctx))

    endpoint.__name__ = route.operation_id
    return endpoint
