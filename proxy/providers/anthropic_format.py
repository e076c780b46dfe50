"""Translation between OpenAI chat-completions and Anthropic's Messages API.

Pure functions and one small state machine, no I/O:

- ``to_messages_request(body)``: OpenAI request -> ``/v1/messages`` request (system messages,
  role alternation, tools, tool_choice, tool calls and tool results, images, stop sequences).
- ``to_chat_completion(message)``: Anthropic message -> OpenAI ``chat.completion``.
- ``StreamTranslator``: Anthropic stream events -> OpenAI ``chat.completion.chunk`` dicts.
"""
from __future__ import annotations

import time
from typing import Any

import orjson

from .base import ProviderHTTPError

DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}

# Anthropic error type -> HTTP status, for error events that arrive inside a stream
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class UnsupportedRequest(ValueError):
    """The OpenAI request uses something the Messages API cannot express."""


# --- request ----------------------------------------------------------------------------------


def to_messages_request(body: dict[str, Any], *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UnsupportedRequest("messages must be a non-empty list")
    n = body.get("n")
    if n is not None and n != 1:
        raise UnsupportedRequest("n > 1 is not supported by Anthropic models")

    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise UnsupportedRequest(f"messages[{i}] must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            text = _plain_text(msg.get("content"), i)
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _user_blocks(msg.get("content"), i)
            anth_role = "user"
        elif role == "assistant":
            blocks = _assistant_blocks(msg, i)
            anth_role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(msg, i)]
            anth_role = "user"
        else:
            raise UnsupportedRequest(f"messages[{i}].role {role!r} is not supported")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == anth_role:      # Anthropic wants strict alternation
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": anth_role, "content": blocks})
    if not turns:
        raise UnsupportedRequest("at least one user or assistant message is required")

    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    out: dict[str, Any] = {"model": body.get("model"), "max_tokens": int(max_tokens), "messages": turns}
    if system:
        out["system"] = "\n\n".join(system)
    temperature = body.get("temperature")
    if temperature is not None:
        out["temperature"] = min(float(temperature), 1.0)    # OpenAI allows 0..2, Anthropic 0..1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        out["stream"] = True
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}

    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(t, i) for i, t in enumerate(tools)]
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None and tools:
        out["tool_choice"] = choice
    return out


def _plain_text(content: Any, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise UnsupportedRequest(f"messages[{i}]: system content may only hold text parts")
            parts.append(str(part.get("text", "")))
        return "\n".join(parts)
    raise UnsupportedRequest(f"messages[{i}].content must be a string or a list of parts")


def _user_blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise UnsupportedRequest(f"messages[{i}].content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text") or ""
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise UnsupportedRequest(f"messages[{i}].content[{j}].image_url.url is missing")
            blocks.append({"type": "image", "source": _source(url, i, j)})
        elif kind == "file":
            data = (part.get("file") or {}).get("file_data")
            if not isinstance(data, str) or not data.startswith("data:"):
                raise UnsupportedRequest(f"messages[{i}].content[{j}]: only inline file_data is supported")
            blocks.append({"type": "document", "source": _source(data, i, j)})
        else:
            raise UnsupportedRequest(f"messages[{i}].content[{j}]: part type {kind!r} is not supported")
    return blocks


def _source(url: str, i: int, j: int) -> dict[str, Any]:
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise UnsupportedRequest(f"messages[{i}].content[{j}]: data URLs must be base64 with a media type")
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise UnsupportedRequest(f"messages[{i}].content[{j}]: unsupported image URL scheme")


def _assistant_blocks(msg: dict[str, Any], i: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
                text = part.get("text") or part.get("refusal") or ""
                if text:
                    blocks.append({"type": "text", "text": text})
    elif content is not None:
        raise UnsupportedRequest(f"messages[{i}].content must be a string or a list of parts")
    for k, call in enumerate(msg.get("tool_calls") or ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not fn.get("name") or not call.get("id"):
            raise UnsupportedRequest(f"messages[{i}].tool_calls[{k}] needs id and function.name")
        raw_args = fn.get("arguments") or "{}"
        try:
            args = orjson.loads(raw_args) if isinstance(raw_args, str) else raw_args
        except orjson.JSONDecodeError:
            raise UnsupportedRequest(f"messages[{i}].tool_calls[{k}].function.arguments is not JSON") from None
        if not isinstance(args, dict):
            raise UnsupportedRequest(f"messages[{i}].tool_calls[{k}].function.arguments must be a JSON object")
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn["name"], "input": args})
    return blocks


def _tool_result(msg: dict[str, Any], i: int) -> dict[str, Any]:
    call_id = msg.get("tool_call_id")
    if not call_id:
        raise UnsupportedRequest(f"messages[{i}].tool_call_id is required for tool messages")
    content = msg.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, list):
        block["content"] = [{"type": "text", "text": str(p.get("text", ""))}
                            for p in content if isinstance(p, dict) and p.get("type") == "text"]
    else:
        block["content"] = "" if content is None else str(content)
    return block


def _tool(tool: Any, i: int) -> dict[str, Any]:
    fn = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
    if not isinstance(fn, dict) or not fn.get("name"):
        raise UnsupportedRequest(f"tools[{i}]: only function tools with a name are supported")
    out: dict[str, Any] = {
        "name": fn["name"],
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"type": "tool", "name": name}
    raise UnsupportedRequest(f"tool_choice {choice!r} is not supported")


# --- response ---------------------------------------------------------------------------------


def usage_from(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + (usage.get("cache_creation_input_tokens") or 0) + cached
    completion = usage.get("output_tokens") or 0
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def to_chat_completion(message: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            tool_calls.append({
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"),
                             "arguments": orjson.dumps(block.get("input") or {}).decode()},
            })
    out_msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        out_msg["tool_calls"] = tool_calls
    stop_reason = message.get("stop_reason")
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": message.get("model"),
        "choices": [{
            "index": 0,
            "message": out_msg,
            "logprobs": None,
            "finish_reason": FINISH_REASONS.get(stop_reason, "stop") if stop_reason else None,
        }],
        "usage": usage_from(message.get("usage")),
    }


def error_from_event(data: dict[str, Any]) -> ProviderHTTPError:
    err = data.get("error") or {}
    error_type = err.get("type") or "api_error"
    status = ERROR_STATUS.get(error_type, 502)
    return ProviderHTTPError(status, str(err.get("message") or error_type), status == 429 or status >= 500,
                             error_type=error_type)


class StreamTranslator:
    """Feed Anthropic stream events (decoded JSON) in order; get OpenAI chunks back."""

    __slots__ = ("include_usage", "done", "_id", "_model", "_created", "_tools", "_usage", "_finish")

    def __init__(self, *, include_usage: bool = False) -> None:
        self.include_usage = include_usage
        self.done = False
        self._id = ""
        self._model = ""
        self._created = 0
        self._tools: dict[int, int] = {}        # Anthropic content block index -> OpenAI tool_call index
        self._usage: dict[str, Any] = {}
        self._finish: str | None = None

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    def feed(self, event: dict[str, Any]) -> dict[str, Any] | None:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return self._chunk({"content": delta.get("text", "")})
            if dtype == "input_json_delta":
                tool_index = self._tools.get(event.get("index", -1))
                if tool_index is None:
                    return None
                return self._chunk({"tool_calls": [
                    {"index": tool_index, "function": {"arguments": delta.get("partial_json", "")}}]})
            return None                            # thinking / signature / citations deltas
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            btype = block.get("type")
            if btype == "tool_use":
                tool_index = len(self._tools)
                self._tools[event.get("index", tool_index)] = tool_index
                return self._chunk({"tool_calls": [{
                    "index": tool_index, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}]})
            if btype == "text" and block.get("text"):
                return self._chunk({"content": block["text"]})
            return None
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = message.get("id") or ""
            self._model = message.get("model") or ""
            self._created = int(time.time())
            self._usage = dict(message.get("usage") or {})
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "message_delta":
            usage = event.get("usage")
            if usage:
                self._usage.update({k: v for k, v in usage.items() if v is not None})
            stop_reason = (event.get("delta") or {}).get("stop_reason")
            if stop_reason:
                self._finish = FINISH_REASONS.get(stop_reason, "stop")
                return self._chunk({}, self._finish)
            return None
        if kind == "message_stop":
            self.done = True
            if self.include_usage:
                return {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                        "model": self._model, "choices": [], "usage": usage_from(self._usage)}
            return None
        if kind == "error":
            raise error_from_event(event)
        return None                                # ping, content_block_stop, unknown future events
