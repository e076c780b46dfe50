"""RFC 7807 problem responses (plus OpenAI's `error` object on /v1 routes)."""
from __future__ import annotations

from typing import Any, Mapping

import orjson
from aiohttp import web

from pipeline.clock import now_rfc3339
from pipeline.errors import StageError

PROBLEM_CT = "application/problem+json"


def problem_body(err: StageError, instance: str, request_id: str, openai: bool) -> dict[str, Any]:
    body = err.problem(instance, request_id, now_rfc3339())
    if openai:
        body["error"] = {"message": err.detail, "type": err.openai_type, "code": err.error_code,
                         "param": err.extra.get("field")}
    return body


def problem_response(err: StageError, *, instance: str, request_id: str, openai: bool,
                     headers: Mapping[str, str] | None = None) -> web.Response:
    h = {"X-Request-ID": request_id}
    if headers:
        h.update(headers)
    h.update(err.headers)
    return web.Response(status=err.status, body=orjson.dumps(problem_body(err, instance, request_id, openai)),
                        content_type=PROBLEM_CT, headers=h)


def sse_error_event(err: StageError, request_id: str) -> bytes:
    """The SSE event that ends a broken or blocked stream; OpenAI SDKs raise APIError from it."""
    payload = {"error": {"message": err.detail, "type": err.openai_type, "code": err.error_code,
                         "request_id": request_id}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"
