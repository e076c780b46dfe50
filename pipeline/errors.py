"""Typed errors a stage raises to stop a request.

Each error carries everything needed to render its RFC 7807 problem; the
proxy turns it into `application/problem+json` (plus an OpenAI-style `error`
object on `/v1/...`). Nothing here formats strings on the happy path.
"""
from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://casemate.dev/problems/"


class StageError(Exception):
    """Base class: a stage refused the request. Subclasses fix status and code."""

    status: int = 400
    error_code: str = "GW-000"
    title: str = "Request refused"
    openai_type: str = "invalid_request_error"
    slug: str = "refused"

    def __init__(
        self,
        detail: str,
        *,
        error_code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if error_code is not None:
            self.error_code = error_code
        self.headers = headers or {}
        self.extra = extra or {}
        # short machine-readable reason, used for the blocks-by-reason metric and audit
        self.reason = reason or self.slug

    def problem(self, instance: str, request_id: str, timestamp: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "error_code": self.error_code,
            "request_id": request_id,
            "timestamp": timestamp,
        }
        if self.extra:
            body.update(self.extra)
        return body


class ValidationFailed(StageError):
    status = 400
    error_code = "GW-400"
    title = "Invalid request"
    slug = "validation-error"


class PayloadTooLarge(StageError):
    status = 413
    error_code = "GW-413"
    title = "Request body too large"
    slug = "payload-too-large"


class Unauthenticated(StageError):
    status = 401
    error_code = "AUTH-001"
    title = "Authentication failed"
    openai_type = "authentication_error"
    slug = "unauthenticated"


class Forbidden(StageError):
    status = 403
    error_code = "AUTH-003"
    title = "Permission denied"
    openai_type = "permission_error"
    slug = "forbidden"


class NotFound(StageError):
    status = 404
    error_code = "GW-404"
    title = "Not found"
    openai_type = "not_found_error"
    slug = "not-found"


class PolicyViolation(StageError):
    """422: the request is well-formed but a policy refuses it."""

    status = 422
    error_code = "GW-001"
    title = "Request refused by policy"
    openai_type = "invalid_request_error"
    slug = "policy-violation"


class RateLimited(StageError):
    status = 429
    error_code = "GW-429"
    title = "Rate limit exceeded"
    openai_type = "rate_limit_error"
    slug = "rate-limited"


class SwitchedOff(StageError):
    status = 503
    error_code = "GW-503"
    title = "Switched off"
    openai_type = "service_unavailable"
    slug = "kill-switch"


class UpstreamFailed(StageError):
    status = 502
    error_code = "PROXY_UPSTREAM_FAILED"
    title = "Upstream provider failed"
    openai_type = "api_error"
    slug = "upstream-failed"


class UpstreamTimeout(StageError):
    status = 504
    error_code = "PROXY_UPSTREAM_TIMEOUT"
    title = "Upstream provider timed out"
    openai_type = "timeout"
    slug = "upstream-timeout"


class HttpProblem(StageError):
    """A problem for an HTTP-level failure outside the chain (unknown route, internal error)."""

    def __init__(self, status: int, title: str, detail: str, *, error_code: str, slug: str) -> None:
        super().__init__(detail, error_code=error_code, reason=slug)
        self.status = status
        self.title = title
        self.slug = slug
        self.openai_type = "api_error" if status >= 500 else "invalid_request_error"
