"""The proxy's agent-gating routes, declared once.

Request schemas and query parameters defined here drive both validation (proxy/check_routes.py
compiles the schemas with fastjsonschema and checks queries against the declarations) and the
OpenAPI document (admin_api/openapi.py takes `openapi_paths()`), so the two cannot drift apart.
"""
from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

MAX_WAIT_S = 60.0
DECISIONS = ("allow", "block", "pending")

_ID: Schema = {"type": "string", "minLength": 1, "maxLength": 200}
CHECK_BODY: Schema = {
    "type": "object", "additionalProperties": False, "required": ["tool_name"],
    "properties": {"agent_id": _ID, "tool_name": _ID, "arguments": {}, "session_id": _ID,
                   "context": {"type": "object"}},
}
DECIDE_BODY: Schema = {
    "type": "object", "additionalProperties": False, "required": ["decision"],
    "properties": {"decision": {"enum": ["allow", "block"]}, "decided_by": {"type": "string", "maxLength": 200},
                   "reason": {"type": "string", "maxLength": 2000}},
}
TRACE: Schema = {
    "type": "object", "additionalProperties": False, "required": ["tool_name"],
    "properties": {"agent_id": _ID, "tool_name": _ID, "session_id": _ID, "arguments": {}, "result": {},
                   "decision": {"enum": list(DECISIONS)}, "blocked": {"type": "boolean"},
                   "error": {"type": ["string", "null"], "maxLength": 4000},
                   "duration_ms": {"type": ["number", "null"], "minimum": 0}, "check_id": _ID,
                   "ts": {"type": "string", "format": "date-time"}},
}
TRACES_BODY: Schema = {"anyOf": [TRACE, {"type": "object", "additionalProperties": False, "required": ["traces"],
                                         "properties": {"traces": {"type": "array", "minItems": 1, "maxItems": 1000,
                                                                   "items": TRACE}}}]}

# query parameter -> kind; proxy/check_routes.py parses each kind, QUERY_KINDS documents it
TRACES_QUERY = {"agent_id": "str", "from": "time", "to": "time", "blocked": "bool", "limit": "int",
                "cursor": "cursor"}
ANOMALIES_QUERY = {"agent_id": "str", "min_score": "score", "decision": "decision", "limit": "int",
                   "cursor": "cursor"}
QUERY_KINDS: dict[str, Schema] = {
    "str": {"type": "string"}, "time": {"type": "string", "format": "date-time"}, "bool": {"type": "boolean"},
    "int": {"type": "integer", "minimum": 1, "maximum": 200}, "score": {"type": "number", "minimum": 0, "maximum": 1},
    "decision": {"enum": list(DECISIONS)}, "cursor": {"type": "string", "description": "next_cursor of the last page"},
}

RISK_LEVELS = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
CHECK_ANSWER: Schema = {
    "type": "object",
    "required": ["check_id", "decision", "policy_name", "risk_level", "classification", "anomaly_score", "reasons"],
    "properties": {
        "check_id": {"type": "string", "format": "uuid"}, "decision": {"enum": list(DECISIONS)},
        "policy_name": {"type": "string"}, "risk_level": {"enum": RISK_LEVELS},
        "classification": {"type": "object", "required": ["category", "signals"], "properties": {
            "category": {"enum": ["database", "shell", "filesystem", "http", "email", "payment", "code_execution",
                                  "other"]},
            "signals": {"type": "array", "items": {"type": "string"}}}},
        "anomaly_score": {"type": "number", "minimum": 0, "maximum": 1},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "agent_id": {"type": "string"}, "tool_name": {"type": "string"}, "session_id": {"type": ["string", "null"]},
        "review": {"type": "object", "description": "pending checks only: expires_at, timeout_decision, poll"},
    },
}
_OBJECT_LIST: Schema = {"type": "array", "items": {"type": "object"}}
_AUTH = [{"apiKey": []}, {"agentToken": []}]


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): {"$ref": f"#/components/responses/Problem{c}"} for c in codes}


def _enveloped(data: Schema, description: str, *, paginated: bool = False, status: str = "200") -> dict[str, Any]:
    meta: Schema = {"$ref": "#/components/schemas/Meta"}
    if paginated:
        meta = {"allOf": [meta, {"type": "object", "required": ["pagination"],
                                 "properties": {"pagination": {"$ref": "#/components/schemas/Pagination"}}}]}
    return {status: {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": ["data", "meta", "errors"],
        "properties": {"data": data, "meta": meta, "errors": {"type": "null"}}}}}}}


_SERVER_TIMING = {"Server-Timing": {
    "description": "`app;dur=<ms>`: the proxy's own time for this request, from the parsed request to the "
                   "ready answer (milliseconds, three decimals)",
    "schema": {"type": "string", "example": "app;dur=0.142"}}}


def _with_timing(responses: dict[str, Any]) -> dict[str, Any]:
    return {status: {**doc, "headers": _SERVER_TIMING} for status, doc in responses.items()}


def _query(declared: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "required": False, "schema": QUERY_KINDS[k]} for n, k in declared.items()]


def _body(schema: Schema) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_CHECK_ID = {"name": "check_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def openapi_paths() -> dict[str, dict[str, Any]]:
    """OpenAPI path items of /api/v1/check, review, traces, anomalies and /mcp."""
    return {
        "/api/v1/check": {"post": {
            "summary": "Ask before a tool call: allow, block or pending (rate limited per key and tenant)",
            "security": _AUTH, "requestBody": _body(CHECK_BODY),
            "responses": {**_with_timing(_enveloped(CHECK_ANSWER, "The decision")),
                          **_problems(400, 401, 403, 413, 429)}}},
        "/api/v1/check/{check_id}/decision": {"get": {
            "summary": "The decision of a check; `wait` long-polls a pending one for up to that many seconds",
            "security": _AUTH, "parameters": [_CHECK_ID, {
                "name": "wait", "in": "query", "required": False,
                "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S}}],
            "responses": {**_enveloped({"type": "object"}, "The check's status and decision"),
                          **_problems(400, 401, 403, 404)}}},
        "/api/v1/check/{check_id}": {"patch": {
            "summary": "Resolve a pending check (permission checks:review; audited)",
            "security": [{"apiKey": []}], "parameters": [_CHECK_ID], "requestBody": _body(DECIDE_BODY),
            "responses": {**_enveloped({"type": "object"}, "The decided check"), **_problems(400, 401, 403, 404, 409)}}},
        "/api/v1/traces": {
            "post": {"summary": "Ingest tool-call traces (answered at once, written in batches)",
                     "security": _AUTH, "requestBody": _body(TRACES_BODY),
                     "responses": {**_enveloped({"type": "object", "properties": {
                         "accepted": {"type": "integer"}, "ids": {"type": "array", "items": {"type": "string"}}}},
                         "Accepted", status="201"), **_problems(400, 401, 403, 413, 429)}},
            "get": {"summary": "List traces", "security": _AUTH, "parameters": _query(TRACES_QUERY),
                    "responses": {**_enveloped(_OBJECT_LIST, "Traces, newest first", paginated=True),
                                  **_problems(400, 401, 403)}}},
        "/api/v1/anomalies": {"get": {
            "summary": "Anomalous checks of the tenant's agents", "security": _AUTH,
            "parameters": _query(ANOMALIES_QUERY),
            "responses": {**_enveloped(_OBJECT_LIST, "Anomalies, newest first", paginated=True),
                          **_problems(400, 401, 403)}}},
        "/mcp": {method: {
            "summary": summary, "security": _AUTH,
            "description": "MCP streamable HTTP, relayed to the configured upstream MCP server (present only when "
                           "one is configured). tools/list results are filtered by policy; every tools/call runs "
                           "the /check decision and a refused call answers a JSON-RPC error -32001.",
            "responses": {"200": {"description": "JSON-RPC answer(s), as JSON or an SSE stream",
                                  "content": {"application/json": {}, "text/event-stream": {}}},
                          **_problems(401, 403, *((429,) if method == "post" else ()))}}
            for method, summary in (("post", "Send JSON-RPC messages to the MCP server through the firewall"),
                                    ("get", "The MCP server's notification stream"),
                                    ("delete", "End the MCP session"))},
    }
