"""Chat completions translated to Anthropic /v1/messages and back, through the proxy."""
from __future__ import annotations

import json

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_anthropic_chat_round_trip(client, mock_upstream):
    r = client.chat.completions.create(model="claude-3-5-sonnet", max_tokens=64,
                                       messages=[{"role": "system", "content": "be brief"},
                                                 {"role": "user", "content": "hi claude"}])
    assert r.choices[0].message.content == "Echo: hi claude"
    sent = [q for q in mock_upstream.requests() if q["path"].endswith("/v1/messages")][-1]
    system = sent["body"]["system"]
    text = system if isinstance(system, str) else "".join(b["text"] for b in system)
    assert text.startswith("be brief") and "cmcanary-" in text   # the output-scan canary rides along


def test_anthropic_stream_round_trip(client):
    stream = client.chat.completions.create(model="claude-3-5-sonnet", stream=True,
                                            messages=[{"role": "user", "content": "stream claude"}])
    assert "".join((c.choices[0].delta.content or "") for c in stream if c.choices) == "Echo: stream claude"


def test_anthropic_tool_call_round_trip(client):
    r = client.chat.completions.create(model="claude-3-5-sonnet", tools=TOOLS,
                                       messages=[{"role": "user", "content": "weather? [[mock:tool_call=get_weather]]"}])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}


def test_anthropic_streamed_tool_call(client):
    stream = client.chat.completions.create(model="claude-3-5-sonnet", tools=TOOLS, stream=True,
                                            messages=[{"role": "user", "content": "w [[mock:tool_call=get_weather]]"}])
    name, args, finish = None, "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        ch = chunk.choices[0]
        for tc in ch.delta.tool_calls or ():
            name = tc.function.name or name
            args += tc.function.arguments or ""
        finish = ch.finish_reason or finish
    assert name == "get_weather" and json.loads(args) == {"city": "Paris"} and finish == "tool_calls"
