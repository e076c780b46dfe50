"""Stage 5: orjson parse, size limits, schema check of the OpenAI request (400 names the field)."""
from __future__ import annotations

from typing import Any

import orjson

from pipeline.context import RequestContext
from pipeline.errors import PayloadTooLarge, ValidationFailed

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0), "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0), "frequency_penalty": (-2.0, 2.0),
}


def _bad(field: str, msg: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {msg}", extra={"field": field}, reason="invalid_request")


def _check_content(i: int, content: Any, role: str) -> None:
    if content is None:
        if role in ("assistant", "function"):
            return
        raise _bad(f"messages[{i}].content", "is required")
    if isinstance(content, str):
        return
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise _bad(f"messages[{i}].content[{j}]", "must be an object with a 'type'")
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise _bad(f"messages[{i}].content[{j}].text", "must be a string")
        return
    raise _bad(f"messages[{i}].content", "must be a string, an array of content parts or null")


def validate_chat(body: dict[str, Any], max_messages: int) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "is required and must be a non-empty string")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise _bad("messages", "is required and must be a non-empty array")
    if len(msgs) > max_messages:
        raise _bad("messages", f"must have at most {max_messages} items")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise _bad(f"messages[{i}]", "must be an object")
        role = m.get("role")
        if role not in _ROLES:
            raise _bad(f"messages[{i}].role", "must be one of system, developer, user, assistant, tool")
        _check_content(i, m.get("content"), role)
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise _bad(f"messages[{i}].tool_call_id", "is required for tool messages")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", "must be a boolean")
    for f in ("max_tokens", "max_completion_tokens", "n"):
        v = body.get(f)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise _bad(f, "must be a positive integer")
    for f, (lo, hi) in _NUMERIC_RANGES.items():
        v = body.get(f)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi):
            raise _bad(f, f"must be a number between {lo:g} and {hi:g}")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools", "must be an array")
        for i, t in enumerate(tools):
            if not isinstance(t, dict) or not isinstance(t.get("function"), dict) \
                    or not isinstance(t["function"].get("name"), str):
                raise _bad(f"tools[{i}].function.name", "is required")


def validate_embeddings(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "is required and must be a non-empty string")
    inp = body.get("input")
    if isinstance(inp, str):
        return
    if not isinstance(inp, list) or not inp:
        raise _bad("input", "must be a string or a non-empty array")
    if not all(isinstance(x, (str, int)) or isinstance(x, list) for x in inp):
        raise _bad("input", "must contain strings or token arrays")


class ParseStage:
    name = "parse"
    phase = "prefix"
    optional = False

    def __init__(self, max_body_bytes: int, max_messages: int) -> None:
        self._max = max_body_bytes
        self._max_messages = max_messages

    def __call__(self, ctx: RequestContext) -> None:
        raw = ctx.raw_body
        if len(raw) > self._max:
            raise PayloadTooLarge(f"Request body is {len(raw)} bytes; the limit is {self._max}.", reason="too_large")
        if not raw:
            raise _bad("body", "is empty; send a JSON object")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed(f"Request body is not valid JSON: {exc}", reason="invalid_json") from None
        if not isinstance(body, dict):
            raise _bad("body", "must be a JSON object")
        if ctx.route == "embeddings":
            validate_embeddings(body)
        else:
            validate_chat(body, self._max_messages)
            ctx.stream = body.get("stream") is True
        ctx.body = body
        ctx.model = body["model"]
        ctx.estimated_tokens = len(raw) // 4
