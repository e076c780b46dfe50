"""Mock LLM upstream: OpenAI, Azure OpenAI and Anthropic wire formats, JSON and SSE.

It is the floor of the benchmark and the upstream of the integration tests, so it is
built to cost little per request: replies are assembled from pre-encoded byte
fragments, bodies are (de)serialised with orjson, and the directive regex (compiled
once) only runs when a message contains ``[[mock:``.

The reply echoes the last user message (``"Echo: <text>"``). Directives embedded in
that message change the behaviour and are stripped from the echo:

``[[mock:status=N]]``         answer with HTTP status N in the provider's error format
``[[mock:delay_ms=N]]``       wait N ms before the first byte
``[[mock:chunk_delay_ms=N]]`` wait N ms between streamed chunks
``[[mock:kill_after=N]]``     stream: drop the TCP connection after N chunks (SSE events);
                              non-stream: drop it before answering
``[[mock:reply=TEXT]]``       reply exactly TEXT
``[[mock:chunk_chars=N]]``    split streamed content every N characters (default: per word)
``[[mock:tool_call=NAME]]``   when the request declares tools, call NAME with ``{"city": "Paris"}``
                              (unless the last message already returns a tool result)
``[[mock:fail_times=N]]``     fail with 503 the first N times this exact message is seen

Usage counts are deterministic estimates: prompt tokens = request body bytes / 4,
completion tokens = reply characters / 4 (at least 1 each).

Run it with ``python -m bench.mock_upstream --host 127.0.0.1 --port 9911``; embed it with
:func:`create_app`, :func:`start` (async, returns the runner) or :func:`start_in_thread`.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import functools
import hashlib
import itertools
import math
import random
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

__all__ = [
    "MOCK_KEY",
    "Directives",
    "MockSettings",
    "MockUpstream",
    "base_url",
    "create_app",
    "main",
    "parse_directives",
    "start",
    "start_in_thread",
]

_DIRECTIVE_MARK = "[[mock:"
_DIRECTIVE_RE = re.compile(r"\[\[mock:([a-z_]+)=(.*?)\]\]", re.DOTALL)
_WORD_RE = re.compile(r"\s*\S+")
_INT_DIRECTIVES = frozenset({"status", "delay_ms", "chunk_delay_ms", "kill_after", "chunk_chars", "fail_times"})
_TEXT_DIRECTIVES = frozenset({"reply", "tool_call"})
_TOOL_ARGUMENTS = '{"city": "Paris"}'
_TOOL_INPUT = {"city": "Paris"}
_JSON = "application/json"
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_FAIL_COUNTER_LIMIT = 10_000

_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                       404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error",
                       422: "invalid_request_error", 429: "rate_limit_exceeded"}
_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                          503: "overloaded_error", 529: "overloaded_error"}


class DirectiveError(ValueError):
    """A ``[[mock:...]]`` directive is unknown or has a bad value."""


@dataclass(frozen=True, slots=True)
class Directives:
    """Behaviour for one request: the app defaults overridden by the message's directives."""

    status: int | None = None
    delay_ms: int = 0
    chunk_delay_ms: int = 0
    kill_after: int | None = None
    reply: str | None = None
    chunk_chars: int | None = None
    tool_call: str | None = None
    fail_times: int = 0


@dataclass(frozen=True, slots=True)
class MockSettings:
    """Process-wide defaults; ``create_app(**defaults)`` takes these field names."""

    delay_ms: int = 0
    chunk_delay_ms: int = 0
    chunk_chars: int | None = None
    reply: str | None = None
    record: bool = True
    record_limit: int = 256
    embedding_dim: int = 1536
    api_keys: frozenset[str] | None = None          # None: any non-empty key is accepted
    models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "claude-sonnet-4-5")
    directives: Directives = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "directives", Directives(
            delay_ms=self.delay_ms, chunk_delay_ms=self.chunk_delay_ms,
            chunk_chars=self.chunk_chars, reply=self.reply))


def parse_directives(text: str, base: Directives) -> tuple[str, Directives]:
    """Strip ``[[mock:NAME=VALUE]]`` directives from ``text``; return the clean text and the merged directives."""
    if _DIRECTIVE_MARK not in text:
        return text, base
    found: dict[str, Any] = {}
    for name, value in _DIRECTIVE_RE.findall(text):
        if name in _INT_DIRECTIVES:
            try:
                number = int(value)
            except ValueError:
                raise DirectiveError(f"mock directive {name} needs an integer, got {value!r}") from None
            if number < 0 or (name == "chunk_chars" and number == 0):
                raise DirectiveError(f"mock directive {name} out of range: {number}")
            found[name] = number
        elif name in _TEXT_DIRECTIVES:
            found[name] = value
        else:
            raise DirectiveError(f"unknown mock directive {name!r}")
    clean = _DIRECTIVE_RE.sub("", text).strip()
    return clean, dataclasses.replace(base, **found)


def _last_user_text(messages: Any) -> str:
    """Text of the last user message that has text (string content or the text parts of a content list);
    user turns that only carry tool results are skipped."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
            if texts:
                return "".join(texts)
    return ""


def _ends_with_tool_result(messages: list[Any]) -> bool:
    """True when the conversation's last message hands a tool result back (OpenAI ``tool`` role or an
    Anthropic ``tool_result`` block): the model answers in text then, so ``tool_call`` does not loop."""
    last = messages[-1]
    if not isinstance(last, dict):
        return False
    if last.get("role") == "tool":
        return True
    content = last.get("content")
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "tool_result" for part in content)


def _split(text: str, chunk_chars: int | None) -> list[str]:
    if not text:
        return []
    if chunk_chars is None:
        return _WORD_RE.findall(text)
    return [text[i:i + chunk_chars] for i in range(0, len(text), chunk_chars)]


def _tokens(n_chars: int) -> int:
    return max(1, n_chars // 4)


@functools.lru_cache(maxsize=2048)
def _embedding(text: str, dim: int) -> tuple[float, ...]:
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    rng = random.Random(seed)
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return tuple(v / norm for v in raw)


class _Reject(Exception):
    """Ends a request early with a provider-formatted error."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(slots=True)
class _Call:
    """One parsed chat call, provider-neutral."""

    body: dict[str, Any]
    body_len: int
    model: str
    text: str
    directives: Directives
    stream: bool
    has_tools: bool
    max_tokens: int | None


class MockUpstream:
    """State and handlers of one mock upstream app."""

    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.requests: deque[dict[str, Any]] = deque(maxlen=settings.record_limit)
        self._seen: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._models_openai = orjson.dumps({"object": "list", "data": [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "mock"} for m in settings.models]})
        self._models_anthropic = orjson.dumps({
            "data": [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                     for m in settings.models],
            "has_more": False,
            "first_id": settings.models[0] if settings.models else None,
            "last_id": settings.models[-1] if settings.models else None})

    # --- bookkeeping ------------------------------------------------------------------------

    def _record(self, request: web.Request, body: Any) -> None:
        if self.settings.record:
            self.requests.append({"method": request.method, "path": request.path,
                                  "query": {str(k): v for k, v in request.query.items()},
                                  "headers": {str(k): v for k, v in request.headers.items()},
                                  "body": body})

    def _key_ok(self, key: str | None) -> bool:
        if not key:
            return False
        return self.settings.api_keys is None or key in self.settings.api_keys

    def _fails(self, text: str, times: int) -> bool:
        if times <= 0:
            return False
        if len(self._seen) >= _FAIL_COUNTER_LIMIT and text not in self._seen:
            self._seen.clear()
        seen = self._seen.get(text, 0) + 1
        self._seen[text] = seen
        return seen <= times

    async def list_requests(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(list(self.requests)), content_type=_JSON)

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.requests.clear()
        self._seen.clear()
        return web.Response(status=204)

    # --- parsing ----------------------------------------------------------------------------

    async def _json_body(self, request: web.Request) -> tuple[dict[str, Any], int]:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._record(request, None)
            raise _Reject(400, "We could not parse the JSON body of your request.") from None
        self._record(request, body)
        if not isinstance(body, dict):
            raise _Reject(400, "The request body must be a JSON object.")
        return body, len(raw)

    def _call(self, body: dict[str, Any], body_len: int, model: str | None, *, anthropic: bool) -> _Call:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Reject(400, "messages: Field required" if anthropic else "'messages' is a required property")
        model = model or body.get("model")
        if not isinstance(model, str) or not model:
            raise _Reject(400, "model: Field required" if anthropic else "'model' is a required property")
        if anthropic:
            max_tokens = body.get("max_tokens")
            if not isinstance(max_tokens, int):
                raise _Reject(400, "max_tokens: Field required")
        else:
            max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
            max_tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
        try:
            text, directives = parse_directives(_last_user_text(messages), self.settings.directives)
        except DirectiveError as exc:
            raise _Reject(400, str(exc)) from None
        if directives.fail_times and self._fails(_last_user_text(messages), directives.fail_times):
            raise _Reject(503, "The server is temporarily overloaded (mock fail_times).")
        tools = body.get("tools")
        has_tools = isinstance(tools, list) and bool(tools) and not _ends_with_tool_result(messages)
        return _Call(body=body, body_len=body_len, model=model, text=text, directives=directives,
                     stream=body.get("stream") is True, has_tools=has_tools, max_tokens=max_tokens)

    @staticmethod
    def _reply(call: _Call) -> tuple[str, bool]:
        """The reply text and whether it was cut by ``max_tokens``."""
        text = call.directives.reply if call.directives.reply is not None else "Echo: " + call.text
        if call.max_tokens is not None and len(text) > call.max_tokens * 4:
            return text[:call.max_tokens * 4], True
        return text, False

    async def _before_first_byte(self, request: web.Request, call: _Call) -> None:
        d = call.directives
        if d.delay_ms:
            await asyncio.sleep(d.delay_ms / 1000)
        if d.status is not None and d.status >= 400:
            raise _Reject(d.status, f"Mock upstream answered {d.status} as directed.")
        if d.kill_after is not None and not call.stream:
            _drop(request)

    # --- OpenAI / Azure -----------------------------------------------------------------------

    def _openai_error(self, exc: _Reject, *, azure: bool = False) -> web.Response:
        fallback = "server_error" if exc.status >= 500 else "invalid_request_error"
        error_type = _OPENAI_ERROR_TYPES.get(exc.status, fallback)
        code = exc.code or (str(exc.status) if azure else None)
        body = {"error": {"message": exc.message, "type": error_type, "param": None, "code": code}}
        return web.Response(status=exc.status, body=orjson.dumps(body), content_type=_JSON)

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        try:
            if not self._key_ok(_bearer(request)):
                self._record(request, None)
                raise _Reject(401, "Incorrect API key provided.", "invalid_api_key")
            return await self._openai_chat(request, None)
        except _Reject as exc:
            return self._openai_error(exc)

    async def azure_chat(self, request: web.Request) -> web.StreamResponse:
        try:
            self._azure_auth(request)
            return await self._openai_chat(request, request.match_info["deployment"])
        except _Reject as exc:
            return self._openai_error(exc, azure=True)

    def _azure_auth(self, request: web.Request) -> None:
        if not self._key_ok(request.headers.get("api-key")):
            self._record(request, None)
            raise _Reject(401, "Access denied due to invalid subscription key or wrong API endpoint. "
                               "Make sure to provide a valid key for an active subscription.")
        if not request.query.get("api-version"):
            self._record(request, None)
            raise _Reject(401, "Access denied: the api-version query parameter is required.")

    async def _openai_chat(self, request: web.Request, deployment: str | None) -> web.StreamResponse:
        body, body_len = await self._json_body(request)
        call = self._call(body, body_len, deployment, anthropic=False)
        await self._before_first_byte(request, call)
        n = next(self._ids)
        headers = {"x-request-id": f"req_mock{n:012d}"}
        tool = call.directives.tool_call if call.has_tools else None
        if call.stream:
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return await self._openai_stream(request, call, n, tool, usage, headers)
        prompt_tokens = _tokens(call.body_len)
        if tool:
            message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
                {"id": f"call_mock{n:012d}", "type": "function",
                 "function": {"name": tool, "arguments": _TOOL_ARGUMENTS}}]}
            finish, completion_tokens = "tool_calls", _tokens(len(tool) + len(_TOOL_ARGUMENTS))
        else:
            text, cut = self._reply(call)
            message = {"role": "assistant", "content": text, "refusal": None}
            finish, completion_tokens = ("length" if cut else "stop"), _tokens(len(text))
        payload = {"id": f"chatcmpl-mock{n:012d}", "object": "chat.completion", "created": int(time.time()),
                   "model": call.model, "system_fingerprint": "fp_mock",
                   "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                   "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                             "total_tokens": prompt_tokens + completion_tokens}}
        return web.Response(body=orjson.dumps(payload), content_type=_JSON, headers=headers)

    async def _openai_stream(self, request: web.Request, call: _Call, n: int, tool: str | None,
                             include_usage: bool, headers: Mapping[str, str]) -> web.StreamResponse:
        head = (b'data: {"id":"chatcmpl-mock%012d","object":"chat.completion.chunk","created":%d,"model":'
                % (n, int(time.time())) + orjson.dumps(call.model)
                + b',"system_fingerprint":"fp_mock","choices":[{"index":0,"delta":')
        usage_tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"
        open_tail = b',"logprobs":null,"finish_reason":null}]' + usage_tail
        chunks: list[bytes] = []
        if tool:
            first = {"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": f"call_mock{n:012d}", "type": "function",
                 "function": {"name": tool, "arguments": ""}}]}
            chunks.append(head + orjson.dumps(first) + open_tail)
            for piece in _split(_TOOL_ARGUMENTS, call.directives.chunk_chars or 8):
                delta = b'{"tool_calls":[{"index":0,"function":{"arguments":' + orjson.dumps(piece) + b"}}]}"
                chunks.append(head + delta + open_tail)
            finish, completion_chars = b'"tool_calls"', len(tool) + len(_TOOL_ARGUMENTS)
        else:
            text, cut = self._reply(call)
            chunks.append(head + b'{"role":"assistant","content":"","refusal":null}' + open_tail)
            for piece in _split(text, call.directives.chunk_chars):
                chunks.append(head + b'{"content":' + orjson.dumps(piece) + b"}" + open_tail)
            finish, completion_chars = (b'"length"' if cut else b'"stop"'), len(text)
        chunks.append(head + b'{},"logprobs":null,"finish_reason":' + finish + b"}]" + usage_tail)
        if include_usage:
            prompt_tokens, completion_tokens = _tokens(call.body_len), _tokens(completion_chars)
            usage = orjson.dumps({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                  "total_tokens": prompt_tokens + completion_tokens})
            chunks.append(head[:head.rindex(b'"choices"')] + b'"choices":[],"usage":' + usage + b"}\n\n")
        chunks.append(b"data: [DONE]\n\n")
        return await _send_sse(request, chunks, call.directives, headers)

    async def openai_embeddings(self, request: web.Request) -> web.Response:
        try:
            if not self._key_ok(_bearer(request)):
                self._record(request, None)
                raise _Reject(401, "Incorrect API key provided.", "invalid_api_key")
            return await self._embeddings(request, None)
        except _Reject as exc:
            return self._openai_error(exc)

    async def azure_embeddings(self, request: web.Request) -> web.Response:
        try:
            self._azure_auth(request)
            return await self._embeddings(request, request.match_info["deployment"])
        except _Reject as exc:
            return self._openai_error(exc, azure=True)

    async def _embeddings(self, request: web.Request, deployment: str | None) -> web.Response:
        body, _ = await self._json_body(request)
        model = deployment or body.get("model")
        if not isinstance(model, str) or not model:
            raise _Reject(400, "'model' is a required property")
        texts = _embedding_inputs(body.get("input"))
        dim = body.get("dimensions", self.settings.embedding_dim)
        if not isinstance(dim, int) or not 1 <= dim <= 8192:
            raise _Reject(400, "'dimensions' must be an integer between 1 and 8192")
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        tokens = 0
        for i, text in enumerate(texts):
            vector = _embedding(text, dim)
            tokens += _tokens(len(text))
            encoded: Any = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        payload = {"object": "list", "data": data, "model": model,
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return web.Response(body=orjson.dumps(payload), content_type=_JSON)

    async def models(self, request: web.Request) -> web.Response:
        if "anthropic-version" in request.headers:
            if not self._key_ok(request.headers.get("x-api-key") or _bearer(request)):
                return _anthropic_error(_Reject(401, "invalid x-api-key"))
            return web.Response(body=self._models_anthropic, content_type=_JSON)
        if not self._key_ok(_bearer(request)):
            return self._openai_error(_Reject(401, "Incorrect API key provided.", "invalid_api_key"))
        return web.Response(body=self._models_openai, content_type=_JSON)

    # --- Anthropic ----------------------------------------------------------------------------

    async def anthropic_messages(self, request: web.Request) -> web.StreamResponse:
        try:
            if not self._key_ok(request.headers.get("x-api-key") or _bearer(request)):
                self._record(request, None)
                raise _Reject(401, "invalid x-api-key")
            if "anthropic-version" not in request.headers:
                self._record(request, None)
                raise _Reject(400, "anthropic-version: header is required")
            body, body_len = await self._json_body(request)
            call = self._call(body, body_len, None, anthropic=True)
            await self._before_first_byte(request, call)
        except _Reject as exc:
            return _anthropic_error(exc)
        n = next(self._ids)
        headers = {"request-id": f"req_mock{n:012d}"}
        tool = call.directives.tool_call if call.has_tools else None
        input_tokens = _tokens(call.body_len)
        if call.stream:
            return await self._anthropic_stream(request, call, n, tool, input_tokens, headers)
        if tool:
            content: list[dict[str, Any]] = [{"type": "tool_use", "id": f"toolu_mock{n:012d}", "name": tool,
                                              "input": _TOOL_INPUT}]
            stop, output_tokens = "tool_use", _tokens(len(tool) + len(_TOOL_ARGUMENTS))
        else:
            text, cut = self._reply(call)
            content = [{"type": "text", "text": text}]
            stop, output_tokens = ("max_tokens" if cut else "end_turn"), _tokens(len(text))
        payload = {"id": f"msg_mock{n:012d}", "type": "message", "role": "assistant", "model": call.model,
                   "content": content, "stop_reason": stop, "stop_sequence": None,
                   "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}
        return web.Response(body=orjson.dumps(payload), content_type=_JSON, headers=headers)

    async def _anthropic_stream(self, request: web.Request, call: _Call, n: int, tool: str | None,
                                input_tokens: int, headers: Mapping[str, str]) -> web.StreamResponse:
        start = {"type": "message_start", "message": {
            "id": f"msg_mock{n:012d}", "type": "message", "role": "assistant", "model": call.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}
        chunks = [_event(b"message_start", start)]
        if tool:
            block: dict[str, Any] = {"type": "tool_use", "id": f"toolu_mock{n:012d}", "name": tool, "input": {}}
            pieces = _split(_TOOL_ARGUMENTS, call.directives.chunk_chars or 8)
            delta_head = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                          b'"delta":{"type":"input_json_delta","partial_json":')
            stop, output_chars = "tool_use", len(tool) + len(_TOOL_ARGUMENTS)
        else:
            text, cut = self._reply(call)
            block = {"type": "text", "text": ""}
            pieces = _split(text, call.directives.chunk_chars)
            delta_head = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                          b'"delta":{"type":"text_delta","text":')
            stop, output_chars = ("max_tokens" if cut else "end_turn"), len(text)
        chunks.append(_event(b"content_block_start", {"type": "content_block_start", "index": 0,
                                                       "content_block": block}))
        chunks.append(b'event: ping\ndata: {"type":"ping"}\n\n')
        chunks.extend(delta_head + orjson.dumps(piece) + b"}}\n\n" for piece in pieces)
        chunks.append(b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n')
        chunks.append(_event(b"message_delta", {"type": "message_delta",
                                                "delta": {"stop_reason": stop, "stop_sequence": None},
                                                "usage": {"output_tokens": _tokens(output_chars)}}))
        chunks.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        return await _send_sse(request, chunks, call.directives, headers)


def _anthropic_error(exc: _Reject) -> web.Response:
    error_type = _ANTHROPIC_ERROR_TYPES.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
    body = {"type": "error", "error": {"type": error_type, "message": exc.message}}
    return web.Response(status=exc.status, body=orjson.dumps(body), content_type=_JSON)


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization")
    if value is None or not value.startswith("Bearer "):
        return None
    return value[7:].strip() or None


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return value
        if all(isinstance(v, int) for v in value):
            return [" ".join(map(str, value))]
        if all(isinstance(v, list) for v in value):
            return [" ".join(map(str, v)) for v in value]
    raise _Reject(400, "'input' must be a string, a list of strings or a list of token arrays")


def _event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _drop(request: web.Request) -> None:
    """Close the TCP connection (after flushing what was written) and abandon the response."""
    transport = request.transport
    if transport is not None:
        transport.close()
    raise asyncio.CancelledError


async def _send_sse(request: web.Request, chunks: Iterable[bytes], directives: Directives,
                    headers: Mapping[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(headers={**_SSE_HEADERS, **headers})
    await response.prepare(request)
    kill_after, delay = directives.kill_after, directives.chunk_delay_ms / 1000
    for sent, chunk in enumerate(chunks):
        if sent == kill_after:
            _drop(request)
        if delay and sent:
            await asyncio.sleep(delay)
        await response.write(chunk)
    await response.write_eof()
    return response


MOCK_KEY: web.AppKey[MockUpstream] = web.AppKey("mock_upstream", MockUpstream)


def create_app(**defaults: Any) -> web.Application:
    """Build the mock app; ``defaults`` are :class:`MockSettings` fields (e.g. ``chunk_delay_ms=5``)."""
    if "api_keys" in defaults and defaults["api_keys"] is not None:
        defaults["api_keys"] = frozenset(defaults["api_keys"])
    if "models" in defaults:
        defaults["models"] = tuple(defaults["models"])
    mock = MockUpstream(MockSettings(**defaults))
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app[MOCK_KEY] = mock
    app.router.add_post("/v1/chat/completions", mock.openai_chat)
    app.router.add_post("/v1/embeddings", mock.openai_embeddings)
    app.router.add_get("/v1/models", mock.models)
    app.router.add_post("/v1/messages", mock.anthropic_messages)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", mock.azure_chat)
    app.router.add_post("/openai/deployments/{deployment}/embeddings", mock.azure_embeddings)
    app.router.add_get("/_mock/requests", mock.list_requests)
    app.router.add_delete("/_mock/requests", mock.clear_requests)
    return app


async def start(host: str = "127.0.0.1", port: int = 0, **defaults: Any) -> web.AppRunner:
    """Serve a mock app on ``host:port`` (0 picks a free port) and return its started runner.

    The bound address is ``runner.addresses[0]``; stop it with ``await runner.cleanup()``.
    """
    runner = web.AppRunner(create_app(**defaults), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


def base_url(runner: web.AppRunner) -> str:
    """``http://host:port`` of a runner returned by :func:`start`."""
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


def start_in_thread(host: str = "127.0.0.1", port: int = 0, **defaults: Any) -> tuple[str, Callable[[], None]]:
    """Serve the mock on a daemon thread with its own event loop; return ``(base_url, stop)``."""
    loop = _new_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            holder["runner"] = loop.run_until_complete(start(host, port, **defaults))
        except Exception as exc:  # noqa: BLE001 - e.g. the port is taken: re-raised in the caller
            holder["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(holder["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="mock-upstream", daemon=True)
    thread.start()
    ready.wait()
    if "error" in holder:
        thread.join()
        raise holder["error"]

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    return base_url(holder["runner"]), stop


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mock_upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9911)
    parser.add_argument("--delay-ms", type=int, default=0, help="default wait before the first byte")
    parser.add_argument("--chunk-delay-ms", type=int, default=0, help="default wait between streamed chunks")
    parser.add_argument("--chunk-chars", type=int, default=None, help="default stream split (default: per word)")
    parser.add_argument("--no-record", action="store_true", help="do not keep recent requests (benchmarks)")
    args = parser.parse_args(argv)

    async def serve() -> None:
        runner = await start(args.host, args.port, delay_ms=args.delay_ms, chunk_delay_ms=args.chunk_delay_ms,
                             chunk_chars=args.chunk_chars, record=not args.no_record)
        print(f"mock upstream on {base_url(runner)}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    loop = _new_loop()
    try:
        loop.run_until_complete(serve())
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()


if __name__ == "__main__":
    main()
