"""HTTP plumbing shared by the provider clients.

``HTTPProvider`` owns one keep-alive :class:`~proxy.providers.http1.HTTP1Client` per provider
(created lazily inside the running loop), sends orjson-encoded bodies, parses orjson replies, maps
client failures to ``ProviderTimeout`` / ``ProviderConnectError`` and error statuses to
``ProviderHTTPError`` with the upstream's own message (API key scrubbed). Subclasses supply URLs, auth headers and the
translation of chunks; ``chat_stream`` turns any failure after the first chunk into
``StreamInterrupted``.
"""
from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from contextlib import aclosing
from email.utils import parsedate_to_datetime
from typing import Any, AsyncGenerator, AsyncIterator, Mapping

import orjson

from .base import (
    ProviderConfig,
    ProviderConnectError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    StreamInterrupted,
)
from . import http1
from .sse import SSEDecoder, SSEEvent

log = logging.getLogger("casemate.providers")

USER_AGENT = "casemate/0.1"
MAX_ERROR_BODY = 65_536
MAX_ERROR_MESSAGE = 1_000
MIN_SCRUB_LEN = 8
LIST_MODELS_TIMEOUT_S = 10.0
_JSON = "application/json"


class HTTPProvider(ABC):
    """Base class of the HTTP providers; subclasses implement the wire format."""

    kind: str = "openai"

    def __init__(self, config: ProviderConfig, *, pool_size: int = 256) -> None:
        self.config = config
        self.name = config.name
        self._pool_size = pool_size
        self._client: http1.HTTP1Client | None = None
        self._closed = False
        # timeouts: connect = pool wait + TCP/TLS connect; read = longest silence while an answer
        # is due; total = the whole exchange (streams have none: long generations are fine)
        self._list_total_s = min(config.total_timeout_s, LIST_MODELS_TIMEOUT_S)
        headers = {"User-Agent": USER_AGENT, "Content-Type": _JSON, "Accept": _JSON,
                   "Accept-Encoding": "gzip, deflate"}
        headers.update(self.auth_headers())
        headers.update(config.headers)
        self._headers: dict[str, str] = headers
        self._header_block = http1.header_block(headers)     # checked and encoded once
        self._get_header_block = http1.header_block(
            {k: v for k, v in headers.items() if k.lower() != "content-type"})

    # --- subclass hooks ----------------------------------------------------------------------

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate every request to this provider."""

    @abstractmethod
    def _chunk_batches(self, body: dict[str, Any], request_id: str) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The provider's stream as lists of OpenAI chunk dicts, one list per network read."""

    # --- public stream wrappers ----------------------------------------------------------------

    async def chat_stream_batches(self, body: dict[str, Any], *,
                                  request_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield non-empty lists of OpenAI chunk dicts (what one network read completed); after the
        first one every failure is ``StreamInterrupted``. Batching keeps per-chunk overhead off
        the relay: one generator step and one downstream write per read, as a bare hop does."""
        started = False
        try:
            async with aclosing(self._chunk_batches(body, request_id)) as batches:
                async for batch in batches:
                    started = True
                    yield batch
        except StreamInterrupted:
            raise
        except ProviderError as exc:
            if started:
                raise StreamInterrupted(self.name, str(exc)) from exc
            raise

    async def chat_stream(self, body: dict[str, Any], *, request_id: str) -> AsyncIterator[dict[str, Any]]:
        """Yield OpenAI chunk dicts one by one (flattened batches)."""
        async with aclosing(self.chat_stream_batches(body, request_id=request_id)) as batches:
            async for batch in batches:
                for chunk in batch:
                    yield chunk

    # --- client ------------------------------------------------------------------------------

    def client(self) -> http1.HTTP1Client:
        client = self._client
        if client is None:
            if self._closed:
                raise ProviderConnectError(f"provider {self.name!r} is closed")
            # no cookie jar at all: one pooled client serves every tenant, so a cookie an upstream
            # sets in answer to one caller must never ride along on another caller's request
            client = self._client = http1.HTTP1Client(
                connect_timeout_s=self.config.connect_timeout_s, limit_per_origin=self._pool_size,
                keepalive_s=30.0)
        return client

    async def close(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # --- requests ----------------------------------------------------------------------------

    async def _post_json(self, url: str, payload: dict[str, Any], request_id: str | None,
                         params: Mapping[str, str] | None = None) -> Any:
        try:
            resp = await self.client().request(
                "POST", url, headers=self._header_block, body=orjson.dumps(payload), params=params,
                extra_headers={"X-Request-ID": request_id} if request_id else None,
                read_timeout_s=self.config.read_timeout_s, total_timeout_s=self.config.total_timeout_s)
            try:
                if resp.status >= 400:
                    raise await self._http_error(resp)
                raw = await resp.read()
            finally:
                resp.close()
        except ProviderError:
            raise
        except http1.HTTPClientError as exc:
            raise self._map_exception(exc) from None
        return self._decode(raw)

    async def _get_json(self, url: str, params: Mapping[str, str] | None = None) -> Any:
        try:
            resp = await self.client().request(
                "GET", url, headers=self._get_header_block, params=params,
                read_timeout_s=self.config.read_timeout_s, total_timeout_s=self._list_total_s)
            try:
                if resp.status >= 400:
                    raise await self._http_error(resp)
                raw = await resp.read()
            finally:
                resp.close()
        except ProviderError:
            raise
        except http1.HTTPClientError as exc:
            raise self._map_exception(exc) from None
        return self._decode(raw)

    async def _events(self, url: str, payload: dict[str, Any], request_id: str | None,
                      params: Mapping[str, str] | None = None) -> AsyncGenerator[SSEEvent, None]:
        """POST and yield the SSE events of the reply one by one."""
        async with aclosing(self._event_batches(url, payload, request_id, params)) as batches:
            async for batch in batches:
                for event in batch:
                    yield event

    async def _event_batches(self, url: str, payload: dict[str, Any], request_id: str | None,
                             params: Mapping[str, str] | None = None) -> AsyncGenerator[list[SSEEvent], None]:
        """POST and yield the SSE events of the reply, a list per network read; the connection
        is released on exit."""
        try:
            resp = await self.client().request(
                "POST", url, headers=self._header_block, body=orjson.dumps(payload), params=params,
                extra_headers={"X-Request-ID": request_id} if request_id else None,
                read_timeout_s=self.config.read_timeout_s, total_timeout_s=None)
            try:
                if resp.status >= 400:
                    raise await self._http_error(resp)
                ctype = resp.headers.get("content-type", "")
                if not ctype.startswith("text/event-stream"):
                    # some servers ignore "stream": true and answer with an error document
                    raw = await resp.read(MAX_ERROR_BODY)
                    raise ProviderHTTPError(502, self._scrub(
                        f"expected text/event-stream, got {ctype or 'no content type'}: "
                        f"{raw[:200].decode('utf-8', 'replace')}"), False)
                decoder = SSEDecoder()
                feed = decoder.feed_bytes
                async for raw in resp.chunks():   # one step per network read
                    events = feed(raw)
                    if events:
                        yield events
                tail = decoder.flush()
                if tail is not None:
                    yield [tail]
            finally:
                resp.close()
        except ProviderError:
            raise
        except ValueError as exc:            # a line longer than the decoder allows
            raise ProviderConnectError(f"malformed event stream: {exc}") from None
        except http1.HTTPClientError as exc:
            raise self._map_exception(exc) from None

    # --- errors ------------------------------------------------------------------------------

    def _decode(self, raw: bytes) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderHTTPError(
                502, self._scrub(f"upstream sent invalid JSON: {raw[:200].decode('utf-8', 'replace')}"),
                False) from None

    def _scrub(self, text: str) -> str:
        key = self.config.api_key
        if key and len(key) >= MIN_SCRUB_LEN and key in text:   # shorter "keys" are test placeholders
            text = text.replace(key, "***")
        if len(text) > MAX_ERROR_MESSAGE:
            text = text[:MAX_ERROR_MESSAGE] + "..."
        return text

    def _map_exception(self, exc: http1.HTTPClientError) -> ProviderError:
        if isinstance(exc, http1.ConnectTimeout):
            return ProviderConnectError(f"connect timeout after {self.config.connect_timeout_s:g}s")
        if isinstance(exc, http1.ReadTimeout):
            return ProviderTimeout(f"no data for {self.config.read_timeout_s:g}s")
        if isinstance(exc, http1.TotalTimeout):
            return ProviderTimeout(f"no complete answer within {self.config.total_timeout_s:g}s")
        if isinstance(exc, http1.ConnectFailed):
            return ProviderConnectError(self._scrub(str(exc)))
        if isinstance(exc, http1.ServerDisconnected):
            return ProviderConnectError("upstream closed the connection")
        if isinstance(exc, http1.PayloadError):
            return ProviderConnectError(self._scrub(str(exc)))
        return ProviderConnectError(self._scrub(f"{type(exc).__name__}: {exc}"))

    async def _http_error(self, resp: http1.Response) -> ProviderHTTPError:
        status = resp.status
        try:
            raw = await resp.read(MAX_ERROR_BODY)
        except http1.HTTPClientError:
            raw = b""
        message, error_type, code = _error_fields(raw)
        if not message:
            message = resp.reason or f"HTTP {status}"
        retryable = status in (408, 429) or status >= 500
        return ProviderHTTPError(status, self._scrub(message), retryable,
                                 retry_after_s=_retry_after(resp.headers) if retryable else None,
                                 error_type=error_type, code=code)


def _error_fields(raw: bytes) -> tuple[str, str | None, str | None]:
    """(message, type, code) from an OpenAI / Azure / Anthropic error body, or its text."""
    try:
        doc = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return raw[:MAX_ERROR_MESSAGE].decode("utf-8", "replace").strip(), None, None
    if isinstance(doc, dict):
        err = doc.get("error", doc)
        if isinstance(err, dict):
            message = err.get("message") or doc.get("message") or ""
            code = err.get("code")
            return str(message), _opt_str(err.get("type")), _opt_str(code)
        if isinstance(err, str):
            return err, None, None
    return "", None, None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (headers keyed in lower case)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None
