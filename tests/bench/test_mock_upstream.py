"""The mock upstream speaks OpenAI, Azure OpenAI and Anthropic as their own SDKs expect, and obeys directives."""
from __future__ import annotations

import base64
import math
import struct
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from bench.mock_upstream import DirectiveError, Directives, parse_directives, start_in_thread

WEATHER_TOOL_OPENAI = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
WEATHER_TOOL_ANTHROPIC = [{"name": "get_weather", "description": "Weather for a city",
                           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
CLAUDE = "claude-mock-1"
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    url, stop = start_in_thread("127.0.0.1", 0)
    yield url
    stop()


@pytest.fixture
def oai(mock_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock_url + "/v1", api_key="sk-test", max_retries=0)


@pytest.fixture
def claude(mock_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock_url, api_key="sk-ant-test", max_retries=0)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


# --- OpenAI ---------------------------------------------------------------------------------------

def test_openai_chat_echoes_the_last_user_message_with_usage(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "user", "content": "first question"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "question"}]}])
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-4o-mini"
    assert reply.choices[0].message.content == "Echo: second question"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.usage.prompt_tokens > 0


def test_openai_stream_sends_role_then_word_chunks_then_finish_and_usage(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=user("one two three"), stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert contents == ["Echo:", " one", " two", " three"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_openai_stream_without_include_usage_has_no_usage_chunk(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_openai_tool_call_directive_returns_a_tool_call(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="gpt-4o", messages=user("weather? [[mock:tool_call=get_weather]]"),
                                        tools=WEATHER_TOOL_OPENAI)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "Paris"}'


def test_openai_streamed_tool_call_arguments_reassemble(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="gpt-4o", messages=user("[[mock:tool_call=get_weather]] go"),
                                         tools=WEATHER_TOOL_OPENAI, stream=True)
    name, arguments, finish = None, "", None
    for chunk in stream:
        choice = chunk.choices[0]
        for call in choice.delta.tool_calls or ():
            name = call.function.name or name
            arguments += call.function.arguments or ""
        finish = choice.finish_reason or finish
    assert (name, arguments, finish) == ("get_weather", '{"city": "Paris"}', "tool_calls")


def test_tool_result_turn_gets_a_text_answer_not_another_call(oai: openai.OpenAI,
                                                              claude: anthropic.Anthropic) -> None:
    question = {"role": "user", "content": "weather? [[mock:tool_call=get_weather]]"}
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    reply = oai.chat.completions.create(model="gpt-4o", tools=WEATHER_TOOL_OPENAI, messages=[
        question, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}])
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == "Echo: weather?"
    message = claude.messages.create(model=CLAUDE, max_tokens=100, tools=WEATHER_TOOL_ANTHROPIC, messages=[
        question,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}])
    assert message.stop_reason == "end_turn"
    assert message.content[0].text == "Echo: weather?"


def test_tool_call_directive_is_ignored_when_the_request_has_no_tools(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="gpt-4o", messages=user("plain [[mock:tool_call=get_weather]]"))
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content == "Echo: plain"


def test_openai_embeddings_are_deterministic_unit_vectors(oai: openai.OpenAI, mock_url: str) -> None:
    first = oai.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=64)
    again = oai.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=64)
    assert [d.index for d in first.data] == [0, 1]
    assert first.data[0].embedding == again.data[0].embedding
    assert first.data[0].embedding != first.data[1].embedding
    assert math.isclose(sum(v * v for v in first.data[0].embedding), 1.0, rel_tol=1e-4)
    raw = httpx.post(mock_url + "/v1/embeddings", headers={"Authorization": "Bearer k"},
                     json={"model": "e", "input": "alpha", "dimensions": 64, "encoding_format": "base64"}).json()
    decoded = struct.unpack("<64f", base64.b64decode(raw["data"][0]["embedding"]))
    assert all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7) for a, b in zip(decoded, first.data[0].embedding))


def test_openai_models_lists_the_configured_models(oai: openai.OpenAI) -> None:
    assert "gpt-4o-mini" in [m.id for m in oai.models.list()]


def test_openai_routes_require_a_bearer_key(mock_url: str) -> None:
    response = httpx.post(mock_url + "/v1/chat/completions", json={"model": "m", "messages": user("x")})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_configured_api_keys_reject_other_keys() -> None:
    url, stop = start_in_thread("127.0.0.1", 0, api_keys={"sk-good"})
    try:
        good = openai.OpenAI(base_url=url + "/v1", api_key="sk-good", max_retries=0)
        assert good.chat.completions.create(model="m", messages=user("x")).choices[0].message.content == "Echo: x"
        bad = openai.OpenAI(base_url=url + "/v1", api_key="sk-bad", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="m", messages=user("x"))
    finally:
        stop()


# --- Azure OpenAI ---------------------------------------------------------------------------------

def test_azure_deployment_route_answers_as_the_deployment(mock_url: str) -> None:
    azure = openai.AzureOpenAI(azure_endpoint=mock_url, api_key="az-key", api_version="2024-10-21", max_retries=0)
    reply = azure.chat.completions.create(model="prod-gpt4o", messages=user("hello azure"))
    assert reply.model == "prod-gpt4o"
    assert reply.choices[0].message.content == "Echo: hello azure"
    vectors = azure.embeddings.create(model="prod-embed", input="text", dimensions=8)
    assert len(vectors.data[0].embedding) == 8


@pytest.mark.parametrize(("headers", "query"), [({}, "?api-version=2024-10-21"), ({"api-key": "k"}, ""),
                                                ({"Authorization": "Bearer k"}, "?api-version=2024-10-21")])
def test_azure_requires_api_key_header_and_api_version(mock_url: str, headers: dict[str, str], query: str) -> None:
    response = httpx.post(f"{mock_url}/openai/deployments/d/chat/completions{query}", headers=headers,
                          json={"messages": user("x")})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "401"


# --- Anthropic ------------------------------------------------------------------------------------

def test_anthropic_message_echoes_with_usage(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=CLAUDE, max_tokens=200, system="be brief",
                                     messages=[{"role": "user", "content": "hello claude"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == "Echo: hello claude"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_anthropic_stream_text_arrives_in_order(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=CLAUDE, max_tokens=200,
                                messages=[{"role": "user", "content": "stream these words"}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["Echo:", " stream", " these", " words"]
    assert final.stop_reason == "end_turn"


def test_anthropic_stream_follows_the_real_event_sequence(mock_url: str) -> None:
    body = {"model": CLAUDE, "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "a b"}]}
    text = httpx.post(mock_url + "/v1/messages", headers=ANTHROPIC_HEADERS, json=body).text
    events = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert events == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"]


def test_anthropic_tool_use_json_and_stream(claude: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "weather [[mock:tool_call=get_weather]]"}]
    message = claude.messages.create(model=CLAUDE, max_tokens=100, messages=messages, tools=WEATHER_TOOL_ANTHROPIC)
    assert message.stop_reason == "tool_use"
    assert (message.content[0].type, message.content[0].name, message.content[0].input) == (
        "tool_use", "get_weather", {"city": "Paris"})
    with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=messages,
                                tools=WEATHER_TOOL_ANTHROPIC) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "Paris"}


def test_anthropic_errors_use_the_anthropic_error_shape(mock_url: str, claude: anthropic.Anthropic) -> None:
    response = httpx.post(mock_url + "/v1/messages", json={"model": CLAUDE, "max_tokens": 5, "messages": user("x")},
                          headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 401
    assert response.json() == {"type": "error", "error": {"type": "authentication_error",
                                                          "message": "invalid x-api-key"}}
    missing_max_tokens = httpx.post(mock_url + "/v1/messages", headers=ANTHROPIC_HEADERS,
                                    json={"model": CLAUDE, "messages": [{"role": "user", "content": "x"}]})
    assert missing_max_tokens.status_code == 400
    assert missing_max_tokens.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(model=CLAUDE, max_tokens=5,
                               messages=[{"role": "user", "content": "[[mock:status=429]]"}])
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_anthropic_models_listing_uses_the_anthropic_shape(claude: anthropic.Anthropic) -> None:
    page = claude.models.list()
    assert page.data[0].type == "model"


# --- directives -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "error"), [(400, openai.BadRequestError), (429, openai.RateLimitError),
                                               (500, openai.InternalServerError)])
def test_status_directive_answers_that_status(oai: openai.OpenAI, status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        oai.chat.completions.create(model="m", messages=user(f"fail [[mock:status={status}]]"))
    assert caught.value.status_code == status  # type: ignore[attr-defined]


def test_reply_directive_replaces_the_echo(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="m", messages=user("ignored [[mock:reply=Exactly this, please.]]"))
    assert reply.choices[0].message.content == "Exactly this, please."


def test_chunk_chars_splits_streamed_content(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="m", messages=user("[[mock:reply=abcdefgh]][[mock:chunk_chars=3]]"),
                                         stream=True)
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert pieces == ["abc", "def", "gh"]


def test_kill_after_drops_the_connection_after_n_chunks(mock_url: str) -> None:
    body = {"model": "m", "stream": True, "messages": user("one two three four five [[mock:kill_after=2]]")}
    received = b""
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream(
            "POST", mock_url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"}) as response:
        for chunk in response.iter_bytes():
            received += chunk
    assert received.count(b"data: ") == 2
    assert b"[DONE]" not in received


def test_kill_after_on_a_json_request_closes_without_an_answer(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="m", messages=user("x [[mock:kill_after=0]]"))


def test_fail_times_fails_with_503_then_succeeds(oai: openai.OpenAI) -> None:
    messages = user(f"retry me {time.time_ns()} [[mock:fail_times=2]]")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as caught:
            oai.chat.completions.create(model="m", messages=messages)
        assert caught.value.status_code == 503
    assert oai.chat.completions.create(model="m", messages=messages).choices[0].message.content.startswith("Echo")


def test_delay_ms_holds_the_first_byte(oai: openai.OpenAI) -> None:
    started = time.monotonic()
    oai.chat.completions.create(model="m", messages=user("slow [[mock:delay_ms=150]]"))
    assert time.monotonic() - started >= 0.15


def test_max_tokens_cuts_the_reply_with_finish_reason_length(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="m", max_tokens=2, messages=user("a fairly long sentence to echo"))
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "Echo: a "


def test_bad_directive_is_a_400_in_provider_format(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown mock directive"):
        oai.chat.completions.create(model="m", messages=user("[[mock:explode=1]]"))


def test_parse_directives_leaves_plain_text_alone() -> None:
    base = Directives(delay_ms=5)
    assert parse_directives("no directives here", base) == ("no directives here", base)
    text, found = parse_directives("hi [[mock:status=502]] there [[mock:reply=a]b]]", base)
    assert text == "hi  there"
    assert (found.status, found.reply, found.delay_ms) == (502, "a]b", 5)
    with pytest.raises(DirectiveError):
        parse_directives("[[mock:delay_ms=soon]]", base)


# --- recording ------------------------------------------------------------------------------------

def test_requests_are_recorded_then_cleared(mock_url: str, oai: openai.OpenAI) -> None:
    assert httpx.delete(mock_url + "/_mock/requests").status_code == 204
    oai.chat.completions.create(model="gpt-4o-mini", messages=user("remember me"))
    recorded = httpx.get(mock_url + "/_mock/requests").json()
    assert len(recorded) == 1
    entry = recorded[0]
    assert entry["path"] == "/v1/chat/completions" and entry["method"] == "POST"
    assert entry["headers"]["Authorization"] == "Bearer sk-test"
    assert entry["body"]["messages"][-1]["content"] == "remember me"
    httpx.delete(mock_url + "/_mock/requests")
    assert httpx.get(mock_url + "/_mock/requests").json() == []
