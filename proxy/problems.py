"""RFC 7807 problem responses (plus OpenAI's `error` object on /v1 routes)."""
from __future__ import annotations

import time
from typing import Any, Mapping

import orjson
from aiohttp import web

from pipeline.errors import StageError

PROBLEM_CT = "application/problem+json"


_second = -1
_prefix = ""


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with milliseconds (`2026-11-24T21:04:20.123Z`).

    The date-and-seconds part is formatted once per second; only the milliseconds change
    between calls (this runs several times per request).
    """
    global _second, _prefix
    now = time.time()
    second = int(now)
    if second != _second:
        _prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    return f"{_prefix}.{int((now - second) * 1000):03d}Z"


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
