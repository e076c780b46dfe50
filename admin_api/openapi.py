"""The OpenAPI 3.1 document, generated from the same route declarations that validate requests.

The proxy's own routes (OpenAI-compatible `/v1/...`, `/api/v1/check`, the gateway, health and
metrics) are described here too, marked with the proxy server, so one document covers both apps.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from admin_api.routing import Route
from admin_api.schemas import COMPONENT_SCHEMAS
from pipeline.checks.api import openapi_paths as check_openapi_paths

_PATH_PARAM = re.compile(r"\{([^}/:]+)(?::[^}]*)?\}")      # aiohttp `{name}` or `{name:regex}`
_ERRORS = {
    "400": "Invalid request: the problem names the field",
    "401": "Not authenticated, or the credential is expired or revoked",
    "403": "Authenticated but missing the permission this operation declares",
    "404": "Not found (ids of other organizations look exactly like unknown ids)",
    "409": "Conflicts with an existing resource",
    "422": "Well-formed but refused",
    "413": "The request body is larger than the server accepts",
    "429": "Too many requests or attempts: Retry-After says when to try again",
    "503": "Not available in this process",
}

PROBLEM = {
    "type": "object",
    "description": "RFC 7807 problem details",
    "required": ["type", "title", "status", "detail", "instance", "error_code", "request_id", "timestamp"],
    "properties": {
        "type": {"type": "string", "format": "uri"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"}, "error_code": {"type": "string"},
        "request_id": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"},
        "errors": {"type": "array", "items": {}},
    },
}
META = {
    "type": "object",
    "required": ["request_id", "timestamp", "version"],
    "properties": {"request_id": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"},
                   "version": {"type": "string"}},
}
PAGINATION = {
    "type": "object",
    "required": ["limit", "has_more", "total_count", "next_cursor"],
    "properties": {"limit": {"type": "integer"}, "has_more": {"type": "boolean"},
                   "total_count": {"type": "integer"}, "next_cursor": {"type": ["string", "null"]}},
}

_OBJ = {"type": "object"}
PROXY_SERVER = [{"url": "http://localhost:8080", "description": "proxy (data plane)"}]
PROXY_PATHS: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"post": {
        "summary": "OpenAI-compatible chat completions through the security chain (JSON or SSE stream)",
        "security": [{"apiKey": []}], "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "required": ["model", "messages"]}}}},
        "responses": {"200": {"description": "OpenAI chat.completion or text/event-stream chunks; security "
                                             "results in X-Casemate-* headers",
                              "content": {"application/json": {"schema": _OBJ}, "text/event-stream": {}}}}}},
    "/v1/embeddings": {"post": {
        "summary": "OpenAI-compatible embeddings", "security": [{"apiKey": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _OBJ}}},
        "responses": {"200": {"description": "OpenAI embeddings list",
                              "content": {"application/json": {"schema": _OBJ}}}}}},
    "/v1/models": {"get": {
        "summary": "Models this key may use (OpenAI format)", "security": [{"apiKey": []}],
        "responses": {"200": {"description": "OpenAI model list", "content": {"application/json": {"schema": _OBJ}}}}}},
    "/api/v1/gateway/chat/completions": {"post": {
        "summary": "Chat completions answered in the Casemate envelope with a security block",
        "security": [{"apiKey": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _OBJ}}},
        "responses": {"200": {"description": "Envelope with data and security",
                              "content": {"application/json": {"schema": _OBJ}}}}}},
    "/health": {"get": {"summary": "Liveness", "security": [],
                        "responses": {"200": {"description": "Alive"}}}},
    "/ready": {"get": {"summary": "Readiness (store, Redis, directory loaded)", "security": [],
                       "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                         "responses": {"200": {"description": "Prometheus text format",
                                               "content": {"text/plain": {}}}}}},
}


def openapi_path(path: str) -> str:
    """An aiohttp route path in OpenAPI form (`{name:regex}` becomes `{name}`)."""
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _with_refs(schema: Any) -> Any:
    """A deep copy of a route schema where each schema of COMPONENT_SCHEMAS (the object itself, as the
    route declared it) becomes a `$ref` to its component: published once, however many routes embed it."""
    for name, component in COMPONENT_SCHEMAS.items():
        if schema is component:
            return {"$ref": f"#/components/schemas/{name}"}
    if isinstance(schema, dict):
        return {k: _with_refs(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_with_refs(v) for v in schema]
    return copy.deepcopy(schema)


def _problem_responses(route: Route) -> dict[str, Any]:
    codes = ["400"] if (route.body is not None or route.query or route.paginated) else []
    if route.body is not None:
        codes.append("413")
    if not route.public:
        codes += ["401", "403"]
    if "{" in route.path:
        codes.append("404")
    if route.method in ("POST", "PUT", "PATCH"):
        codes += ["409", "422"]
    codes += [str(s) for s in route.problems]
    return {c: {"$ref": f"#/components/responses/Problem{c}"} for c in sorted(set(codes))}


def _success(route: Route) -> dict[str, Any]:
    if route.status == 204:
        return {"204": {"description": "Done; no content"}}
    data = _with_refs(route.response) if route.response is not None else {}
    if route.envelope:
        meta: dict[str, Any] = {"$ref": "#/components/schemas/Meta"}
        if route.paginated:
            meta = {"allOf": [meta, {"type": "object", "required": ["pagination"],
                                     "properties": {"pagination": {"$ref": "#/components/schemas/Pagination"}}}]}
        schema: dict[str, Any] = {"type": "object", "required": ["data", "meta", "errors"],
                                  "properties": {"data": data, "meta": meta, "errors": {"type": "null"}}}
    else:
        schema = data
    return {str(route.status): {"description": route.summary, "content": {route.media_type: {"schema": schema}}}}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "tags": [route.tag]}
    if route.description and route.description != route.summary:
        op["description"] = route.description
    if route.permission:
        op["x-permission"] = route.permission
    if route.users_only:
        op["x-users-only"] = True
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    for name, schema in route.query.items():
        s = copy.deepcopy(schema)
        desc = s.pop("description", None)
        p: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": s}
        if desc:
            p["description"] = desc
        params.append(p)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _with_refs(route.body)}}}
    op["responses"] = {**_success(route), **_problem_responses(route)}
    op["security"] = [] if route.public else [{"bearer": []}]
    return op


def build_openapi(routes: list[Route], *, version: str, admin_url: str = "http://localhost:8081") -> dict[str, Any]:
    """OpenAPI 3.1 for every declared admin route plus the proxy's public routes."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
    for path, item in {**PROXY_PATHS, **check_openapi_paths()}.items():
        ops = {method: {**copy.deepcopy(op), "tags": ["proxy"], "operationId": "proxy_" + method + path.replace("/", "_")
                        .replace(".", "_")} for method, op in item.items()}
        paths[path] = {**ops, "servers": PROXY_SERVER}
    tags = sorted({r.tag for r in routes} | {"proxy"})
    responses = {
        f"Problem{code}": {"description": text,
                           "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for code, text in _ERRORS.items()
    }
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {"title": "Casemate API", "version": version,
                 "description": "Admin API (tenants, users, API keys, policies, providers, kill switch, audit) "
                                "and the proxy's OpenAI-compatible routes. Admin responses use the envelope "
                                "{data, meta, errors}; failures are RFC 7807 problems."},
        "servers": [{"url": admin_url, "description": "admin API"}],
        "tags": [{"name": t} for t in tags],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An access token from /api/v1/auth/login, or an API key (cm_live_...)"},
                "apiKey": {"type": "http", "scheme": "bearer", "description": "A Casemate API key (cm_live_...)"},
                "agentToken": {"type": "apiKey", "in": "header", "name": "X-Casemate-Agent-Token",
                               "description": "An agent JWT from POST /api/v1/agents/{agent_id}/token"},
            },
            "schemas": {"Problem": PROBLEM, "Meta": META, "Pagination": PAGINATION,
                        **{name: copy.deepcopy(schema) for name, schema in COMPONENT_SCHEMAS.items()}},
            "responses": responses,
        },
    }
