"""OpenAI <-> Anthropic Messages translation, checked against the SDKs' own types."""
from __future__ import annotations

from typing import Any

import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from proxy.providers.anthropic_format import (
    StreamTranslator,
    UnsupportedRequest,
    to_chat_completion,
    to_messages_request,
)
from proxy.providers.base import ProviderHTTPError
from tests.providers.scripted import anthropic_message, anthropic_text_events

_PARAMS = pydantic.TypeAdapter(MessageCreateParamsNonStreaming)
_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def _materialize(value: Any) -> Any:
    """pydantic validates Iterable fields lazily; walk everything so every block is checked."""
    if isinstance(value, dict):
        return {k: _materialize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ValidatorIterator":
        return [_materialize(v) for v in value]
    return value


def assert_valid_anthropic_request(payload: dict[str, Any]) -> None:
    _materialize(_PARAMS.validate_python({k: v for k, v in payload.items() if k != "stream"}))


def test_system_messages_become_the_system_field_and_max_tokens_defaults() -> None:
    payload = to_messages_request({"model": "claude-x", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hi"}]})
    assert_valid_anthropic_request(payload)
    assert payload["system"] == "Be brief.\n\nAnswer in French."
    assert payload["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert payload["max_tokens"] == 4096


def test_sampling_parameters_stop_sequences_and_user_are_mapped() -> None:
    payload = to_messages_request({"model": "c", "messages": [{"role": "user", "content": "x"}],
                                   "max_completion_tokens": 300, "temperature": 1.7, "top_p": 0.9,
                                   "stop": "END", "user": "u-42"})
    assert_valid_anthropic_request(payload)
    assert (payload["max_tokens"], payload["temperature"], payload["top_p"]) == (300, 1.0, 0.9)
    assert payload["stop_sequences"] == ["END"]
    assert payload["metadata"] == {"user_id": "u-42"}


def test_consecutive_same_role_messages_are_merged_for_alternation() -> None:
    payload = to_messages_request({"model": "c", "messages": [
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"}, {"role": "user", "content": "d"}]})
    assert [m["role"] for m in payload["messages"]] == ["user", "assistant", "user"]
    assert [b["text"] for b in payload["messages"][0]["content"]] == ["a", "b"]


def test_tools_tool_choice_tool_calls_and_tool_results_translate() -> None:
    payload = to_messages_request({"model": "c", "tools": [WEATHER_TOOL], "tool_choice": "required",
                                   "parallel_tool_calls": False, "messages": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
        {"role": "user", "content": "Thanks; which is warmer?"}]})
    assert_valid_anthropic_request(payload)
    assert payload["tools"] == [{"name": "get_weather", "description": "Weather for a city",
                                 "input_schema": WEATHER_TOOL["function"]["parameters"]}]
    assert payload["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assistant, results = payload["messages"][1], payload["messages"][2]
    assert assistant["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}}]
    assert results["role"] == "user"
    assert [b["type"] for b in results["content"]] == ["tool_result", "tool_result", "text"]
    assert results["content"][0] == {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"}
    assert results["content"][1]["content"] == [{"type": "text", "text": "21C"}]


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"})])
def test_tool_choice_forms(choice: Any, expected: dict[str, Any]) -> None:
    payload = to_messages_request({"model": "c", "tools": [WEATHER_TOOL], "tool_choice": choice,
                                   "messages": [{"role": "user", "content": "x"}]})
    assert payload["tool_choice"] == expected


def test_images_become_base64_or_url_sources() -> None:
    payload = to_messages_request({"model": "c", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]})
    assert_valid_anthropic_request(payload)
    blocks = payload["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}


@pytest.mark.parametrize("body, needle", [
    ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n > 1"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}, "not JSON"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]},
     "base64"),
    ({"messages": [{"role": "system", "content": "only system"}]}, "at least one"),
])
def test_requests_anthropic_cannot_express_are_refused_with_a_reason(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(UnsupportedRequest, match=needle):
        to_messages_request({"model": "c", **body})


def test_text_and_tool_use_reply_becomes_a_chat_completion() -> None:
    message = anthropic_message([
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        stop_reason="tool_use")
    Message.model_validate(message)
    out = to_chat_completion(message, created=7)
    ChatCompletion.model_validate(out)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"] == [{"id": "toolu_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


@pytest.mark.parametrize("stop_reason, finish", [("end_turn", "stop"), ("max_tokens", "length"),
                                                 ("stop_sequence", "stop"), ("tool_use", "tool_calls")])
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    out = to_chat_completion(anthropic_message([{"type": "text", "text": "x"}], stop_reason=stop_reason))
    assert out["choices"][0]["finish_reason"] == finish


def test_cached_input_tokens_count_as_prompt_tokens() -> None:
    message = anthropic_message([{"type": "text", "text": "x"}])
    message["usage"] = {"input_tokens": 3, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 100,
                        "output_tokens": 4}
    usage = to_chat_completion(message)["usage"]
    assert usage["prompt_tokens"] == 113 and usage["prompt_tokens_details"] == {"cached_tokens": 100}


def test_streamed_text_translates_to_chunks_with_a_final_usage_chunk() -> None:
    events = anthropic_text_events(["Hel", "lo"])
    for event in events:
        if event["type"] != "ping":
            _EVENT.validate_python(event)          # the scripted events are real Anthropic events
    translator = StreamTranslator(include_usage=True)
    chunks = [c for e in events if (c := translator.feed(e)) is not None]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2
    assert translator.done and all(c["id"] == "msg_01stream" for c in chunks)


def json_delta(index: int, fragment: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta",
                                                                     "partial_json": fragment}}


def test_streamed_tool_calls_carry_index_id_name_and_argument_fragments() -> None:
    events = [
        {"type": "message_start", "message": {"id": "msg_t", "type": "message", "role": "assistant", "model": "c",
                                              "content": [], "stop_reason": None, "stop_sequence": None,
                                              "usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}},
        json_delta(1, '{"ci'),
        json_delta(1, 'ty":"Paris"}'),
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {}}},
        json_delta(2, '{"city":"Rome"}'),
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 30}},
        {"type": "message_stop"}]
    for event in events:
        _EVENT.validate_python(event)
    translator = StreamTranslator()
    chunks = [c for e in events if (c := translator.feed(e)) is not None]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls", ()):
            slot = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
            slot["id"] += call.get("id") or ""
            slot["name"] += call.get("function", {}).get("name") or ""
            slot["arguments"] += call.get("function", {}).get("arguments") or ""
    assert calls == {0: {"id": "toolu_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                     1: {"id": "toolu_b", "name": "get_weather", "arguments": '{"city":"Rome"}'}}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_error_event_raises_with_a_retryable_status_for_overload() -> None:
    translator = StreamTranslator()
    with pytest.raises(ProviderHTTPError) as info:
        translator.feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert (info.value.status, info.value.retryable, info.value.message) == (529, True, "Overloaded")
