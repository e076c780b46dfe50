"""Anthropic Messages API provider: OpenAI chat-completions in, OpenAI shapes out.

The translation lives in ``anthropic_format``; this module is the HTTP client (``x-api-key``,
``anthropic-version``), the stream driver and the model listing.
"""
from __future__ import annotations

from contextlib import aclosing
from datetime import datetime
from typing import Any, AsyncGenerator

import orjson

from .anthropic_format import (
    DEFAULT_MAX_TOKENS,
    StreamTranslator,
    UnsupportedRequest,
    to_chat_completion,
    to_messages_request,
)
from .base import ProviderConfig, ProviderHTTPError
from .transport import HTTPProvider

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider(HTTPProvider):
    kind = "anthropic"

    def __init__(self, config: ProviderConfig, *, pool_size: int = 256,
                 default_max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        super().__init__(config, pool_size=pool_size)
        base = config.base_url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        self._messages_url = base + "/messages"
        self._models_url = base + "/models"
        self.default_max_tokens = default_max_tokens

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    def _translate(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        try:
            payload = to_messages_request(body, default_max_tokens=self.default_max_tokens)
        except UnsupportedRequest as exc:
            raise ProviderHTTPError(400, str(exc), False, error_type="invalid_request_error") from None
        if stream:
            payload["stream"] = True
        else:
            payload.pop("stream", None)
        return payload

    async def chat(self, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        doc = await self._post_json(self._messages_url, self._translate(body, False), request_id)
        if not isinstance(doc, dict) or doc.get("type") != "message":
            raise ProviderHTTPError(502, f"provider {self.name!r} sent a reply that is not a message", False)
        return to_chat_completion(doc)

    async def _chunk_batches(self, body: dict[str, Any],
                             request_id: str) -> AsyncGenerator[list[dict[str, Any]], None]:
        options = body.get("stream_options")
        include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
        translator = StreamTranslator(include_usage=include_usage)
        feed = translator.feed
        loads = orjson.loads
        async with aclosing(self._event_batches(self._messages_url, self._translate(body, True),
                                                request_id)) as batches:
            async for events in batches:
                out: list[dict[str, Any]] = []
                try:
                    for event in events:
                        try:
                            data = loads(event.data)
                        except orjson.JSONDecodeError:
                            raise ProviderHTTPError(502, self._scrub(
                                f"invalid JSON in stream: {event.data[:200].decode('utf-8', 'replace')}"),
                                False) from None
                        if not isinstance(data, dict):
                            raise ProviderHTTPError(502, "stream event is not a JSON object", False)
                        try:
                            chunk = feed(data)
                        except ProviderHTTPError as exc:        # an error event from upstream
                            raise ProviderHTTPError(exc.status, self._scrub(exc.message), exc.retryable,
                                                    error_type=exc.error_type) from None
                        if chunk is not None:
                            out.append(chunk)
                        if translator.done:
                            if out:
                                yield out
                            return
                except ProviderHTTPError:
                    if out:               # chunks before the error still reach the client
                        yield out
                    raise
                if out:
                    yield out
        raise ProviderHTTPError(502, "stream ended before message_stop", True)

    async def embeddings(self, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        raise ProviderHTTPError(400, f"provider {self.name!r} (anthropic) does not offer embeddings", False,
                                error_type="invalid_request_error", code="unsupported_operation")

    async def list_models(self) -> list[dict[str, Any]]:
        doc = await self._get_json(self._models_url, {"limit": "1000"})
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise ProviderHTTPError(502, f"provider {self.name!r} sent a model list without data", False)
        return [{"id": m["id"], "object": "model", "created": _epoch(m.get("created_at")), "owned_by": "anthropic"}
                for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _epoch(stamp: Any) -> int:
    if not isinstance(stamp, str):
        return 0
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
