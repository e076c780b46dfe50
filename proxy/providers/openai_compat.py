"""OpenAI-compatible provider: api.openai.com and servers speaking its wire format (vLLM, Ollama,
Together, LiteLLM...). Requests and replies pass through unchanged; streams are parsed from SSE."""
from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncGenerator, Mapping

import orjson

from .base import ProviderConfig, ProviderHTTPError
from .transport import HTTPProvider, _error_fields


class OpenAICompatProvider(HTTPProvider):
    kind = "openai"

    def __init__(self, config: ProviderConfig, *, pool_size: int = 256) -> None:
        super().__init__(config, pool_size=pool_size)
        base = config.base_url.rstrip("/")
        self._base = base
        self._params: Mapping[str, str] | None = None

    def auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def chat_url(self, model: str) -> str:
        return self._base + "/chat/completions"

    def embeddings_url(self, model: str) -> str:
        return self._base + "/embeddings"

    async def chat(self, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        payload = body
        if body.get("stream") or "stream_options" in body:
            payload = {k: v for k, v in body.items() if k != "stream_options"}
            payload["stream"] = False
        doc = await self._post_json(self.chat_url(body.get("model", "")), payload, request_id, self._params)
        if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
            raise ProviderHTTPError(502, f"provider {self.name!r} sent a reply without choices", False)
        return doc

    async def _chunk_batches(self, body: dict[str, Any],
                             request_id: str) -> AsyncGenerator[list[dict[str, Any]], None]:
        payload = body if body.get("stream") is True else {**body, "stream": True}
        finished = False
        loads = orjson.loads
        async with aclosing(self._event_batches(self.chat_url(body.get("model", "")), payload, request_id,
                                                self._params)) as batches:
            async for events in batches:
                out: list[dict[str, Any]] = []
                try:
                    for event in events:
                        data = event.data
                        if data == b"[DONE]":
                            if out:
                                yield out
                            return
                        try:
                            chunk = loads(data)
                        except orjson.JSONDecodeError:
                            raise ProviderHTTPError(502, self._scrub(
                                f"invalid JSON in stream: {data[:200].decode('utf-8', 'replace')}"), False) from None
                        if not isinstance(chunk, dict):
                            raise ProviderHTTPError(502, "stream event is not a JSON object", False)
                        if event.event == "error" or ("error" in chunk and "choices" not in chunk):
                            message, error_type, code = _error_fields(data)
                            raise ProviderHTTPError(502, self._scrub(message or "upstream stream error"), False,
                                                    error_type=error_type, code=code)
                        choices = chunk.get("choices")
                        if choices and choices[0].get("finish_reason"):
                            finished = True
                        out.append(chunk)
                except ProviderHTTPError:
                    if out:               # chunks before the error still reach the client
                        yield out
                    raise
                if out:
                    yield out
        if not finished:
            raise ProviderHTTPError(502, "stream ended before [DONE]", True)

    async def embeddings(self, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        doc = await self._post_json(self.embeddings_url(body.get("model", "")), body, request_id, self._params)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise ProviderHTTPError(502, f"provider {self.name!r} sent an embeddings reply without data", False)
        return doc

    async def list_models(self) -> list[dict[str, Any]]:
        doc = await self._get_json(self._base + "/models", self._params)
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise ProviderHTTPError(502, f"provider {self.name!r} sent a model list without data", False)
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
