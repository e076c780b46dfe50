"""Anthropic client end to end against the scripted upstream (JSON and SSE)."""
from __future__ import annotations

from typing import Callable

import pytest

from proxy.providers import ProviderConfig, ProviderRouter, StreamInterrupted, UpstreamRejected
from tests.providers.scripted import (
    Reply,
    ScriptedUpstream,
    anthropic_message,
    anthropic_sse,
    anthropic_text_events,
    chat_body,
)

Build = Callable[..., ProviderRouter]
MODEL = "claude-sonnet-4-5"


def anthropic_cfg(upstream: ScriptedUpstream) -> ProviderConfig:
    return ProviderConfig(name="claude", kind="anthropic", base_url=upstream.url, api_key="sk-ant-789",
                          models=(MODEL,))


async def test_chat_posts_messages_with_anthropic_headers_and_translates_back(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/messages", Reply(json=anthropic_message([{"type": "text", "text": "Bonjour"}])))
    router = make_router(anthropic_cfg(upstream))
    body = {"model": MODEL, "messages": [{"role": "system", "content": "French only."},
                                         {"role": "user", "content": "Hello"}], "max_tokens": 50}
    result = await router.chat(router.resolve(MODEL), body, "req-a")
    assert result["object"] == "chat.completion"
    assert result["choices"][0]["message"] == {"role": "assistant", "content": "Bonjour"}
    sent = upstream.calls("/v1/messages")[0]
    assert sent.headers["x-api-key"] == "sk-ant-789" and sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers
    assert sent.json == {"model": MODEL, "max_tokens": 50, "system": "French only.",
                         "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]}


async def test_stream_translates_text_events_and_reports_usage_when_asked(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/messages", Reply(sse=anthropic_sse(anthropic_text_events(["Bon", "jour"]))))
    router = make_router(anthropic_cfg(upstream))
    body = chat_body(model=MODEL, stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in router.chat_stream(router.resolve(MODEL), body, "r")]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Bonjour"
    assert chunks[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    assert upstream.calls("/v1/messages")[0].json["stream"] is True


async def test_streamed_tool_call_arrives_as_openai_tool_call_deltas(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    events = anthropic_text_events([])[:1] + [
        {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"}]
    upstream.script("/v1/messages", Reply(sse=anthropic_sse(events)))
    router = make_router(anthropic_cfg(upstream))
    chunks = [c async for c in router.chat_stream(router.resolve(MODEL), chat_body(model=MODEL, stream=True), "r")]
    deltas = [call for c in chunks for call in c["choices"][0]["delta"].get("tool_calls", ())]
    assert deltas[0] == {"index": 0, "id": "toolu_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}
    assert "".join(d["function"]["arguments"] for d in deltas) == '{"city":"Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_error_event_mid_stream_raises_stream_interrupted(make_router: Build,
                                                                upstream: ScriptedUpstream) -> None:
    events = anthropic_text_events(["partial"])[:4] + [
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    upstream.script("/v1/messages", Reply(sse=anthropic_sse(events)))
    router = make_router(anthropic_cfg(upstream))
    seen = []
    with pytest.raises(StreamInterrupted, match="Overloaded"):
        async for chunk in router.chat_stream(router.resolve(MODEL), chat_body(model=MODEL, stream=True), "r"):
            seen.append(chunk)
    assert seen and len(upstream.calls("/v1/messages")) == 1


async def test_stream_cut_before_message_stop_is_an_interruption(make_router: Build,
                                                                 upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/messages", Reply(sse=anthropic_sse(anthropic_text_events(["a", "b"])[:4])))
    router = make_router(anthropic_cfg(upstream))
    with pytest.raises(StreamInterrupted, match="message_stop"):
        async for _ in router.chat_stream(router.resolve(MODEL), chat_body(model=MODEL, stream=True), "r"):
            pass


async def test_anthropic_error_document_is_relayed(make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/messages", Reply(status=400, json={"type": "error", "error": {
        "type": "invalid_request_error", "message": "max_tokens: 999999 > 64000"}}))
    router = make_router(anthropic_cfg(upstream))
    with pytest.raises(UpstreamRejected) as info:
        await router.chat(router.resolve(MODEL), chat_body(model=MODEL), "r")
    assert info.value.status == 400 and "max_tokens: 999999" in info.value.detail


async def test_untranslatable_request_is_refused_without_calling_upstream(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    router = make_router(anthropic_cfg(upstream))
    with pytest.raises(UpstreamRejected, match="n > 1") as info:
        await router.chat(router.resolve(MODEL), chat_body(model=MODEL, n=3), "r")
    assert info.value.status == 400 and upstream.requests == []


async def test_embeddings_are_refused_as_unsupported(make_router: Build, upstream: ScriptedUpstream) -> None:
    router = make_router(anthropic_cfg(upstream))
    with pytest.raises(UpstreamRejected, match="does not offer embeddings"):
        await router.embeddings(router.resolve(MODEL), {"model": MODEL, "input": "x"}, "r")
