"""Stage 1: read or make X-Request-ID."""
from __future__ import annotations

import re

from pipeline.context import RequestContext
from pipeline.ids import uuid7_str

_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}").fullmatch


def assign_request_id(ctx: RequestContext) -> None:
    """Use the caller's X-Request-ID when it is sane (≤128 safe chars), else a new UUIDv7."""
    given = ctx.headers.get("X-Request-ID")
    ctx.request_id = given if given is not None and _VALID(given) else uuid7_str()


class RequestIdStage:
    name = "request_id"
    phase = "prefix"
    optional = False

    def __call__(self, ctx: RequestContext) -> None:
        if not ctx.request_id:
            assign_request_id(ctx)
