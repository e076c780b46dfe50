"""Response conventions of the admin API: envelope, RFC 7807 problems, cursors, JSON."""
from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from aiohttp import web

from admin_api.ids import is_uuid
from pipeline.clock import now_rfc3339

API_VERSION = "v1"
PROBLEM_BASE = "https://casemate.dev/problems/"
REQUEST_ID = web.RequestKey("request_id", str)
_JSON_OPTS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    """JSON bytes; datetimes as RFC 3339 UTC (`Z`)."""
    return orjson.dumps(value, option=_JSON_OPTS)


class ApiError(Exception):
    """A refusal rendered as an RFC 7807 problem."""

    def __init__(
        self, status: int, detail: str, *, code: str, title: str, slug: str,
        extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.title = title
        self.slug = slug
        self.extra = extra or {}
        self.headers = headers or {}


def bad_request(detail: str, *, field: str | None = None, errors: list[dict[str, str]] | None = None) -> ApiError:
    extra: dict[str, Any] = {}
    if errors is not None:
        extra["errors"] = errors
    elif field is not None:
        extra["errors"] = [{"field": field, "message": detail}]
    return ApiError(400, detail, code="ADM-400", title="Invalid request", slug="validation-error", extra=extra)


def unauthenticated(detail: str, *, code: str = "AUTH-001") -> ApiError:
    return ApiError(401, detail, code=code, title="Authentication failed", slug="unauthenticated",
                    headers={"WWW-Authenticate": 'Bearer realm="casemate-admin"'})


def forbidden(detail: str, *, code: str = "AUTH-003") -> ApiError:
    return ApiError(403, detail, code=code, title="Permission denied", slug="forbidden")


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, f"{what} not found", code="ADM-404", title="Not found", slug="not-found")


def conflict(detail: str) -> ApiError:
    return ApiError(409, detail, code="ADM-409", title="Conflict", slug="conflict")


def unprocessable(detail: str, *, errors: list[str] | None = None) -> ApiError:
    return ApiError(422, detail, code="ADM-422", title="Refused", slug="unprocessable",
                    extra={"errors": errors} if errors else None)


def too_many(detail: str, retry_after_s: float) -> ApiError:
    seconds = max(1, int(retry_after_s + 0.999))
    return ApiError(429, detail, code="AUTH-429", title="Too many attempts", slug="rate-limited",
                    headers={"Retry-After": str(seconds)})


def problem_response(request: web.Request, err: ApiError) -> web.Response:
    request_id = request.get(REQUEST_ID, "")
    body = {
        "type": PROBLEM_BASE + err.slug,
        "title": err.title,
        "status": err.status,
        "detail": err.detail,
        "instance": request.path,
        "error_code": err.code,
        "request_id": request_id,
        "timestamp": now_rfc3339(),
        **err.extra,
    }
    headers = {"X-Request-ID": request_id, **err.headers}
    return web.Response(status=err.status, body=dumps(body), content_type="application/problem+json",
                        headers=headers)


def envelope_response(
    request: web.Request, data: Any, *, status: int = 200, pagination: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    meta: dict[str, Any] = {"request_id": request.get(REQUEST_ID, ""), "timestamp": now_rfc3339(),
                            "version": API_VERSION}
    if pagination is not None:
        meta["pagination"] = pagination
    if status == 204:
        return web.Response(status=204, headers=headers)
    return web.Response(status=status, body=dumps({"data": data, "meta": meta, "errors": None}),
                        content_type="application/json", headers=headers)


# ---- cursors ------------------------------------------------------------------------------------


def encode_cursor(after_id: str) -> str:
    """Opaque to clients: they pass it back unchanged."""
    return base64.urlsafe_b64encode(f"c1:{after_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad_request("cursor is not valid", field="cursor") from exc
    if not raw.startswith("c1:") or not is_uuid(raw[3:]):
        raise bad_request("cursor is not valid", field="cursor")
    return raw[3:]
