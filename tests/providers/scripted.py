"""Scripted upstream server and canned documents for provider tests: real HTTP on 127.0.0.1 (random port).

Tests queue ``Reply`` objects per path; each request to that path pops the next one (the last one
repeats). Replies are JSON documents, SSE frames, error statuses, delays before the first byte or
between frames, and dropped connections. Every request is recorded (method, path, query, headers,
JSON body) so tests can check what reached upstream.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    sse: Sequence[str | bytes] = ()
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0            # before the first byte
    frame_delay_s: float = 0.0      # between SSE frames
    drop_after: int | None = None   # SSE: cut the connection after N frames; JSON: before answering
    raw: bytes | None = None        # body sent as-is (with ``content_type``)
    content_type: str = "application/json"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


class ScriptedUpstream:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._scripts: dict[str, list[Reply]] = {}
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def script(self, path: str, *replies: Reply) -> None:
        self._scripts[path] = list(replies)

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.query),
                                      dict(request.headers), orjson.loads(raw) if raw else None))
        queue = self._scripts.get(request.path)
        if not queue:
            return web.json_response({"error": {"message": f"no script for {request.path}"}}, status=599)
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.drop_after is not None and not reply.sse:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if reply.sse:
            resp = web.StreamResponse(status=reply.status, headers=reply.headers)
            resp.content_type = "text/event-stream"
            await resp.prepare(request)
            for i, frame in enumerate(reply.sse):
                if reply.drop_after is not None and i >= reply.drop_after:
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                if i and reply.frame_delay_s:
                    await asyncio.sleep(reply.frame_delay_s)
                await resp.write(frame.encode() if isinstance(frame, str) else frame)
            await resp.write_eof()
            return resp
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers=reply.headers,
                                content_type=reply.content_type)
        return web.Response(status=reply.status, body=orjson.dumps(reply.json), headers=reply.headers,
                            content_type="application/json")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingSleep:
    """Stands in for asyncio.sleep in the router: records backoff delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class RecordingObserver:
    def __init__(self) -> None:
        self.latencies: list[tuple[str, str]] = []
        self.retries: list[tuple[str, str]] = []

    def upstream_latency(self, provider: str, seconds: float, outcome: str) -> None:
        assert seconds >= 0
        self.latencies.append((provider, outcome))

    def retry(self, provider: str, reason: str) -> None:
        self.retries.append((provider, reason))


# --- canned upstream documents ---------------------------------------------------------------


def openai_completion(text: str = "Hello!", model: str = "gpt-4o-mini", prompt: int = 5,
                      completion: int = 2) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def openai_sse(pieces: Sequence[str], model: str = "gpt-4o-mini", *, done: bool = True,
               usage: bool = False) -> list[str]:
    def frame(delta: dict[str, Any], finish: str | None = None) -> str:
        chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1, "model": model,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return "data: " + orjson.dumps(chunk).decode() + "\n\n"

    frames = [frame({"role": "assistant", "content": ""})]
    frames += [frame({"content": p}) for p in pieces]
    frames.append(frame({}, "stop"))
    if usage:
        frames.append("data: " + orjson.dumps({
            "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(pieces),
                                     "total_tokens": 5 + len(pieces)}}).decode() + "\n\n")
    if done:
        frames.append("data: [DONE]\n\n")
    return frames


def anthropic_message(content: list[dict[str, Any]], stop_reason: str = "end_turn",
                      model: str = "claude-sonnet-4-5") -> dict[str, Any]:
    return {"id": "msg_01test", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 7}}


def anthropic_sse(events: Sequence[dict[str, Any]]) -> list[str]:
    return [f"event: {e['type']}\ndata: {orjson.dumps(e).decode()}\n\n" for e in events]


def anthropic_text_events(pieces: Sequence[str], model: str = "claude-sonnet-4-5") -> list[dict[str, Any]]:
    return [
        {"type": "message_start", "message": {"id": "msg_01stream", "type": "message", "role": "assistant",
                                              "model": model, "content": [], "stop_reason": None,
                                              "stop_sequence": None,
                                              "usage": {"input_tokens": 10, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in pieces),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": len(pieces)}},
        {"type": "message_stop"},
    ]


def chat_body(text: str = "Hi", model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}
