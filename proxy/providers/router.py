"""The provider router: model resolution, retries, failover and circuit breaking (stage 11's engine).

``ProviderRouter`` builds one client per configured provider (each with its own keep-alive pool),
resolves a requested model to a ``Route`` and runs calls with:

- retries with full-jitter exponential backoff on connect errors, 429 and 5xx, honouring
  ``Retry-After`` up to ``max_retry_after_s`` (a longer wait skips straight to failover);
- never a retry once a stream has yielded its first chunk (the stream raises ``StreamInterrupted``);
- failover along the ``fallback`` chain when a provider's retries are exhausted, it timed out,
  or its circuit breaker is open;
- ``pipeline.errors.UpstreamFailed`` (502) / ``UpstreamTimeout`` (504) when nothing answered, and
  ``UpstreamRejected`` carrying the upstream status for its 4xx answers (other than 429).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Protocol, TypeVar

from pipeline.errors import StageError, UpstreamFailed, UpstreamTimeout

from .anthropic import AnthropicProvider
from .azure import AzureOpenAIProvider
from .base import (
    Provider,
    ProviderConfig,
    ProviderConnectError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    StreamInterrupted,
)
from .breaker import CircuitBreaker
from .openai_compat import OpenAICompatProvider

log = logging.getLogger("casemate.providers")

T = TypeVar("T")

PROVIDER_CLASSES: dict[str, Callable[..., Provider]] = {
    "openai": OpenAICompatProvider,
    "azure": AzureOpenAIProvider,
    "anthropic": AnthropicProvider,
}


class ModelNotFound(StageError):
    """No configured provider serves the requested model."""

    status = 404
    error_code = "GW-404"
    title = "Model not found"
    openai_type = "invalid_request_error"
    slug = "model-not-found"
    code = "model_not_found"


class UpstreamRejected(StageError):
    """The upstream refused the request with a 4xx (other than 429); its status and message are relayed."""

    error_code = "PROXY_UPSTREAM_REJECTED"
    title = "Upstream provider rejected the request"
    slug = "upstream-rejected"

    def __init__(self, detail: str, *, status: int, provider: str, openai_type: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(detail, extra={"provider": provider}, reason="upstream_rejected")
        self.status = status
        self.provider = provider
        self.openai_type = openai_type or "invalid_request_error"
        self.code = code


class RouterObserver(Protocol):
    """Metrics hook; the proxy plugs Prometheus in. Calls must be cheap and must not raise."""

    def upstream_latency(self, provider: str, seconds: float, outcome: str) -> None:
        """One upstream attempt ended. outcome: ok, rejected, rate_limited, server_error,
        connect_error, timeout. For streams ``seconds`` is the time to the first chunk."""

    def retry(self, provider: str, reason: str) -> None:
        """The router tries again. reason: rate_limited, server_error, connect_error (same provider),
        failover (moving on from ``provider`` to its fallback), breaker_open (skipped, circuit open)."""


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider      # the client of the configured provider (``route.provider.name``)
    upstream_model: str     # model name sent upstream

    @property
    def provider_name(self) -> str:
        return self.provider.name


class UpstreamTrace:
    """Optional out-parameter: which provider finally served a call, after how many attempts."""

    __slots__ = ("provider", "upstream_model", "attempts", "failed_over")

    def __init__(self) -> None:
        self.provider: str | None = None
        self.upstream_model: str | None = None
        self.attempts = 0
        self.failed_over = False


class _CircuitOpen(ProviderError):
    def __init__(self, provider: str, retry_in: float) -> None:
        super().__init__(f"circuit breaker open, next trial in {retry_in:.1f}s")
        self.retry_in = retry_in


class ProviderRouter:
    def __init__(
        self,
        configs: Iterable[ProviderConfig | Any],
        default_provider: str | None = None,
        *,
        observer: RouterObserver | None = None,
        pool_size: int = 256,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 20.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        cfgs = [c if isinstance(c, ProviderConfig) else ProviderConfig.from_settings(c) for c in configs]
        names = [c.name for c in cfgs]
        if len(set(names)) != len(names):
            raise ValueError("provider names must be unique")
        self._configs: dict[str, ProviderConfig] = {c.name: c for c in cfgs}
        for c in cfgs:
            if c.fallback is not None and c.fallback not in self._configs:
                raise ValueError(f"provider {c.name!r}: fallback {c.fallback!r} is not a configured provider")
        if default_provider is not None and default_provider not in self._configs:
            raise ValueError(f"default provider {default_provider!r} is not configured")
        self.default_provider = default_provider
        self._observer = observer
        self._max_backoff_s = max_backoff_s
        self._max_retry_after_s = max_retry_after_s
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._providers: dict[str, Provider] = {
            c.name: PROVIDER_CLASSES[c.kind](c, pool_size=pool_size) for c in cfgs}
        self._breakers: dict[str, CircuitBreaker] = {
            c.name: CircuitBreaker(c.breaker_failures, c.breaker_reset_s, clock=clock) for c in cfgs}
        self._chains: dict[str, tuple[str, ...]] = {c.name: self._chain(c.name) for c in cfgs}
        self._by_model: dict[str, str] = {}
        self._wildcard: str | None = None
        for c in cfgs:
            for model in c.models:
                if model == "*":
                    self._wildcard = self._wildcard or c.name
                else:
                    self._by_model.setdefault(model, c.name)
        self._closed = False

    def _chain(self, name: str) -> tuple[str, ...]:
        chain = [name]
        nxt = self._configs[name].fallback
        while nxt is not None and nxt not in chain:
            chain.append(nxt)
            nxt = self._configs[nxt].fallback
        return tuple(chain)

    # --- introspection -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Open for traffic: not closed, and at least one provider's circuit is not open."""
        return not self._closed and any(b.state != "open" for b in self._breakers.values())

    @property
    def providers(self) -> Mapping[str, Provider]:
        return self._providers

    def breaker_states(self) -> dict[str, str]:
        return {name: b.state for name, b in self._breakers.items()}

    # --- routing -------------------------------------------------------------------------------

    def resolve(self, model: str) -> Route:
        """``provider/model`` prefix, else the first provider listing the model, else the first
        ``*`` provider, else the default provider; otherwise ``ModelNotFound`` (404)."""
        if not isinstance(model, str) or not model:
            raise ModelNotFound("the request names no model")
        if "/" in model:
            prefix, _, rest = model.partition("/")
            if rest and prefix in self._configs:
                return Route(self._providers[prefix], rest)
        name = self._by_model.get(model) or self._wildcard or self.default_provider
        if name is None:
            raise ModelNotFound(f"The model '{model}' does not exist or is not served by this gateway")
        return Route(self._providers[name], model)

    def cost(self, provider: str, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """Price of a call in the configured currency (0.0 when the model has no price)."""
        cfg = self._configs.get(provider)
        price = cfg.prices.get(model) if cfg is not None else None
        if price is None:
            return 0.0
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1000.0

    def _fallback_model(self, provider: str, model: str) -> str:
        models = self._configs[provider].models
        return model if "*" in models or model in models else models[0]

    # --- calls ---------------------------------------------------------------------------------

    async def chat(self, route: Route, body: dict[str, Any], request_id: str, *,
                   trace: UpstreamTrace | None = None) -> dict[str, Any]:
        async def call(provider: Provider, model: str) -> dict[str, Any]:
            return await provider.chat(_with_model(body, model), request_id=request_id)

        result, _ = await self._run(route, call, trace)
        return result

    async def embeddings(self, route: Route, body: dict[str, Any], request_id: str, *,
                         trace: UpstreamTrace | None = None) -> dict[str, Any]:
        async def call(provider: Provider, model: str) -> dict[str, Any]:
            return await provider.embeddings(_with_model(body, model), request_id=request_id)

        result, _ = await self._run(route, call, trace)
        return result

    async def chat_stream_batches(self, route: Route, body: dict[str, Any], request_id: str, *,
                                  trace: UpstreamTrace | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """Lists of OpenAI chunk dicts, one per upstream network read. Errors before the first
        batch (after retries and failover) are raised by the first ``__anext__`` as pipeline
        errors, so the caller can still answer with a problem document; a break after that
        raises ``StreamInterrupted``."""

        async def open_stream(provider: Provider, model: str) -> tuple[AsyncIterator[list[dict[str, Any]]], list[dict[str, Any]]]:
            stream = provider.chat_stream_batches(_with_model(body, model), request_id=request_id)
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                raise ProviderConnectError("stream ended before its first chunk") from None
            except BaseException:
                await stream.aclose()       # type: ignore[attr-defined]
                raise
            return stream, first

        (stream, first), name = await self._run(route, open_stream, trace)
        async with aclosing(stream):        # type: ignore[type-var]
            yield first
            try:
                async for batch in stream:
                    yield batch
            except StreamInterrupted as exc:
                self._breakers[name].record_failure()
                log.warning("stream from provider %s interrupted: %s", name, exc.reason)
                raise

    async def chat_stream(self, route: Route, body: dict[str, Any], request_id: str, *,
                          trace: UpstreamTrace | None = None) -> AsyncIterator[dict[str, Any]]:
        """OpenAI chunk dicts one by one (flattened ``chat_stream_batches``)."""
        async with aclosing(self.chat_stream_batches(route, body, request_id, trace=trace)) as batches:
            async for batch in batches:
                for chunk in batch:
                    yield chunk

    async def _run(self, route: Route, call: Callable[[Provider, str], Awaitable[T]],
                   trace: UpstreamTrace | None) -> tuple[T, str]:
        chain = self._chains.get(route.provider.name)
        if chain is None:
            raise ModelNotFound(f"provider {route.provider.name!r} is not configured")
        observer = self._observer
        last_exc: ProviderError | None = None
        last_name = chain[0]
        attempts = 0
        failures: list[tuple[str, ProviderError]] = []
        for hop, name in enumerate(chain):
            provider = self._providers[name]
            cfg = provider.config
            breaker = self._breakers[name]
            model = route.upstream_model if hop == 0 else self._fallback_model(name, route.upstream_model)
            last_name = name
            retry = 0
            while True:
                if not breaker.allow():
                    last_exc = _CircuitOpen(name, breaker.retry_in())
                    if observer is not None:
                        observer.retry(name, "breaker_open")
                    break
                attempts += 1
                started = time.perf_counter()
                try:
                    result = await call(provider, model)
                except ProviderHTTPError as exc:
                    last_exc = exc
                    if exc.status in (401, 403):
                        # Casemate's own provider credential was refused: the caller's request is fine,
                        # so this is an upstream failure (502) and the fallback provider gets a chance.
                        breaker.record_failure()
                        self._observe(name, started, "auth_error")
                        last_exc = ProviderHTTPError(502, f"provider refused Casemate's credentials "
                                                          f"(HTTP {exc.status}): {exc.message}", False)
                        break
                    if exc.status < 500 and exc.status != 429 and not exc.retryable:
                        breaker.record_success()            # upstream is up; it disliked the request
                        self._observe(name, started, "rejected")
                        raise self._rejected(name, exc) from None
                    if exc.status == 429:
                        breaker.release()
                        outcome = "rate_limited"
                    else:
                        breaker.record_failure()
                        outcome = "server_error"
                    self._observe(name, started, outcome)
                    if not exc.retryable:
                        break
                except ProviderTimeout as exc:
                    last_exc = exc
                    breaker.record_failure()
                    self._observe(name, started, "timeout")
                    break                                   # a slow upstream is not retried in place
                except ProviderConnectError as exc:
                    last_exc = exc
                    breaker.record_failure()
                    outcome = "connect_error"
                    self._observe(name, started, outcome)
                except BaseException:
                    breaker.release()                       # cancelled: no verdict on upstream health
                    raise
                else:
                    breaker.record_success()
                    self._observe(name, started, "ok")
                    if trace is not None:
                        trace.provider = name
                        trace.upstream_model = model
                        trace.attempts = attempts
                        trace.failed_over = hop > 0
                    return result, name
                if retry >= cfg.max_retries:
                    break
                delay = self._backoff(cfg.backoff_base_s, retry, getattr(last_exc, "retry_after_s", None))
                if delay is None:
                    break                                   # Retry-After longer than we wait
                retry += 1
                log.warning("provider %s attempt %d failed (%s); retrying in %.2fs", name, retry, last_exc, delay)
                if observer is not None:
                    observer.retry(name, outcome)
                await self._sleep(delay)
            if last_exc is not None:
                failures.append((name, last_exc))
            if hop + 1 < len(chain):
                log.warning("provider %s failed (%s); failing over to %s", name, last_exc, chain[hop + 1])
                if observer is not None:
                    observer.retry(name, "failover")
        if trace is not None:
            trace.provider = last_name
            trace.attempts = attempts
            trace.failed_over = len(chain) > 1
        raise self._failed(failures, last_exc)

    def _backoff(self, base: float, retry: int, retry_after: float | None) -> float | None:
        delay = self._rng.uniform(0.0, min(self._max_backoff_s, base * (2 ** retry)))
        if retry_after is not None:
            if retry_after > self._max_retry_after_s:
                return None
            delay = max(delay, retry_after)
        return delay

    def _observe(self, name: str, started: float, outcome: str) -> None:
        if self._observer is not None:
            self._observer.upstream_latency(name, time.perf_counter() - started, outcome)

    @staticmethod
    def _rejected(name: str, exc: ProviderHTTPError) -> UpstreamRejected:
        return UpstreamRejected(
            f"provider {name!r} rejected the request (HTTP {exc.status}): {exc.message}",
            status=exc.status, provider=name, openai_type=exc.error_type, code=exc.code)

    @staticmethod
    def _failed(failures: list[tuple[str, ProviderError]], exc: ProviderError | None) -> StageError:
        """The last provider's error decides the problem; the detail lists every provider tried."""
        detail = "; ".join(f"provider {n!r}: {e}" for n, e in failures) or "no provider was tried"
        if isinstance(exc, ProviderTimeout):
            return UpstreamTimeout(f"Upstream timed out ({detail})", reason="upstream_timeout")
        if isinstance(exc, _CircuitOpen):
            return UpstreamFailed(f"Upstream unavailable ({detail})", reason="circuit_open",
                                  headers={"Retry-After": str(max(1, int(exc.retry_in + 0.999)))})
        headers = None
        if isinstance(exc, ProviderHTTPError) and exc.retry_after_s is not None:
            headers = {"Retry-After": str(max(1, int(exc.retry_after_s + 0.999)))}   # pass upstream's hint on
        return UpstreamFailed(f"Upstream failed ({detail})", reason="upstream_failed", headers=headers)

    # --- models and lifecycle -----------------------------------------------------------------

    async def list_models(self) -> dict[str, Any]:
        """OpenAI model list: configured model names plus what each provider lists (a provider that
        cannot be reached contributes its configured names only). Ids resolve back through
        ``resolve``: a listed model that would route elsewhere is shown as ``provider/model``."""
        names = list(self._providers)
        results = await asyncio.gather(*(self._providers[n].list_models() for n in names),
                                       return_exceptions=True)
        merged: dict[str, dict[str, Any]] = {}
        for name in names:
            for model in self._configs[name].models:
                if model != "*" and model not in merged:
                    merged[model] = {"id": model, "object": "model", "created": 0, "owned_by": name}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, (ProviderError, asyncio.TimeoutError)):
                    raise result
                log.warning("provider %s: listing models failed: %s", name, result)
                continue
            for item in result:
                upstream_id = item["id"]
                public = upstream_id if self._routes_to(upstream_id, name) else f"{name}/{upstream_id}"
                if public not in merged:
                    merged[public] = {"id": public, "object": "model", "created": int(item.get("created") or 0),
                                      "owned_by": str(item.get("owned_by") or name)}
        return {"object": "list", "data": list(merged.values())}

    def _routes_to(self, model: str, provider: str) -> bool:
        try:
            route = self.resolve(model)
        except ModelNotFound:
            return False
        return route.provider.name == provider and route.upstream_model == model

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*(p.close() for p in self._providers.values()), return_exceptions=True)


def _with_model(body: dict[str, Any], model: str) -> dict[str, Any]:
    if body.get("model") == model:
        return body
    out = dict(body)
    out["model"] = model
    return out
