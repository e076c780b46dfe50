"""OpenAI-compatible and Azure OpenAI clients against the scripted upstream."""
from __future__ import annotations

from typing import Callable

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from proxy.providers import ProviderConfig, ProviderRouter, StreamInterrupted, UpstreamRejected
from tests.providers.scripted import Reply, ScriptedUpstream, chat_body, openai_completion, openai_sse

Build = Callable[..., ProviderRouter]


def openai_cfg(upstream: ScriptedUpstream, **kw: object) -> ProviderConfig:
    return ProviderConfig(name="oa", kind="openai", base_url=upstream.url + "/v1", api_key="sk-test-123",
                          **kw)  # type: ignore[arg-type]


def azure_cfg(upstream: ScriptedUpstream, **kw: object) -> ProviderConfig:
    return ProviderConfig(name="az", kind="azure", base_url=upstream.url, api_key="az-key-456",
                          api_version="2024-10-21", models=("gpt-4o", "gpt-4o-mini"),
                          deployments={"gpt-4o": "prod-4o"}, **kw)  # type: ignore[arg-type]


async def test_openai_chat_sends_bearer_auth_request_id_and_returns_the_completion(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/chat/completions", Reply(json=openai_completion("Hello there")))
    router = make_router(openai_cfg(upstream, headers={"OpenAI-Organization": "org-1"}))
    body = chat_body("Hi", temperature=0.2, stream=True, stream_options={"include_usage": True})
    result = await router.chat(router.resolve("gpt-4o-mini"), body, "req-1")
    ChatCompletion.model_validate(result)
    assert result["choices"][0]["message"]["content"] == "Hello there"
    sent = upstream.calls("/v1/chat/completions")[0]
    assert sent.headers["Authorization"] == "Bearer sk-test-123"
    assert sent.headers["X-Request-ID"] == "req-1"
    assert sent.headers["OpenAI-Organization"] == "org-1"
    assert sent.json["stream"] is False and "stream_options" not in sent.json
    assert sent.json["temperature"] == 0.2 and sent.json["messages"] == body["messages"]
    assert body["stream"] is True                      # the caller's body is not mutated


async def test_openai_stream_yields_chunks_in_order_and_passes_stream_options(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/chat/completions", Reply(sse=openai_sse(["Hel", "lo"], usage=True)))
    router = make_router(openai_cfg(upstream))
    body = chat_body(stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in router.chat_stream(router.resolve("gpt-4o-mini"), body, "req-2")]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello"
    assert chunks[-1]["usage"]["completion_tokens"] == 2
    assert upstream.calls("/v1/chat/completions")[0].json["stream_options"] == {"include_usage": True}


async def test_openai_stream_with_finish_but_no_done_marker_ends_cleanly(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/chat/completions", Reply(sse=openai_sse(["a"], done=False)))
    router = make_router(openai_cfg(upstream))
    chunks = [c async for c in router.chat_stream(router.resolve("m"), chat_body(stream=True), "r")]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_openai_stream_error_event_after_start_raises_stream_interrupted(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    frames = openai_sse(["a"])[:2] + ['data: {"error": {"message": "model overloaded", "type": "server_error"}}\n\n']
    upstream.script("/v1/chat/completions", Reply(sse=frames))
    router = make_router(openai_cfg(upstream))
    got = []
    with pytest.raises(StreamInterrupted, match="model overloaded"):
        async for chunk in router.chat_stream(router.resolve("m"), chat_body(stream=True), "r"):
            got.append(chunk)
    assert len(got) == 2


async def test_openai_embeddings_and_model_listing(make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/embeddings", Reply(json={"object": "list", "model": "text-embedding-3-small",
                                                  "data": [{"object": "embedding", "index": 0,
                                                            "embedding": [0.1, 0.2]}],
                                                  "usage": {"prompt_tokens": 2, "total_tokens": 2}}))
    upstream.script("/v1/models", Reply(json={"object": "list", "data": [
        {"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "openai"}]}))
    router = make_router(openai_cfg(upstream))
    body = {"model": "text-embedding-3-small", "input": "hello"}
    result = await router.embeddings(router.resolve(body["model"]), body, "r")
    assert result["data"][0]["embedding"] == [0.1, 0.2]
    assert upstream.calls("/v1/embeddings")[0].json == body
    assert [m["id"] for m in await router.providers["oa"].list_models()] == ["gpt-4o"]


async def test_upstream_400_is_relayed_with_status_and_message(make_router: Build,
                                                                upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/chat/completions", Reply(status=400, json={"error": {
        "message": "'messages' must contain the word 'json'", "type": "invalid_request_error",
        "code": "invalid_value"}}))
    router = make_router(openai_cfg(upstream))
    with pytest.raises(UpstreamRejected) as info:
        await router.chat(router.resolve("m"), chat_body(), "r")
    err = info.value
    assert (err.status, err.error_code, err.openai_type, err.code) == (400, "PROXY_UPSTREAM_REJECTED",
                                                                       "invalid_request_error", "invalid_value")
    assert "must contain the word 'json'" in err.detail
    assert len(upstream.calls("/v1/chat/completions")) == 1          # a 400 is never retried


async def test_azure_uses_deployment_url_api_version_and_api_key_header(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script("/openai/deployments/prod-4o/chat/completions",
                    Reply(json=openai_completion("from azure", model="gpt-4o-2024-08-06")))
    router = make_router(azure_cfg(upstream))
    result = await router.chat(router.resolve("gpt-4o"), chat_body(model="gpt-4o"), "req-az")
    assert result["model"] == "gpt-4o-2024-08-06"                  # kept as Azure says
    sent = upstream.calls("/openai/deployments/prod-4o/chat/completions")[0]
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == "az-key-456"
    assert "Authorization" not in sent.headers


async def test_azure_defaults_the_deployment_to_the_model_name_and_streams(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    prompt_filter = ('data: {"id":"","object":"","created":0,"model":"","choices":[],'
                     '"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}\n\n')
    upstream.script("/openai/deployments/gpt-4o-mini/chat/completions",
                    Reply(sse=[prompt_filter, *openai_sse(["x", "y"])]))
    router = make_router(azure_cfg(upstream))
    chunks = [c async for c in router.chat_stream(router.resolve("gpt-4o-mini"), chat_body(stream=True), "r")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "xy"
    assert upstream.calls("/openai/deployments/gpt-4o-mini/chat/completions")[0].json["stream"] is True


async def test_azure_lists_configured_models_without_a_network_call(make_router: Build,
                                                                    upstream: ScriptedUpstream) -> None:
    router = make_router(azure_cfg(upstream))
    assert [m["id"] for m in await router.providers["az"].list_models()] == ["gpt-4o", "gpt-4o-mini"]
    assert upstream.requests == []


async def test_a_cookie_an_upstream_sets_for_one_caller_never_reaches_the_next_caller(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/chat/completions",
                    Reply(json=openai_completion("one"), headers={"Set-Cookie": "session=tenant-a-secret; Path=/"}),
                    Reply(json=openai_completion("two")))
    # by host name: a cookie jar ignores cookies from bare IP addresses, which would hide the leak
    router = make_router(ProviderConfig(name="oa", kind="openai", api_key="sk-test-123",
                                        base_url=upstream.url.replace("127.0.0.1", "localhost") + "/v1"))
    for rid in ("req-tenant-a", "req-tenant-b"):
        await router.chat(router.resolve("gpt-4o-mini"), chat_body("Hi"), rid)
    first, second = upstream.calls("/v1/chat/completions")
    assert "Cookie" not in first.headers and "Cookie" not in second.headers
