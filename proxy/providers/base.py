"""Provider interface: configuration, the Provider protocol and the errors providers raise.

Every provider speaks OpenAI chat-completions shapes on both sides: it takes an OpenAI request
body (already parsed, ``model`` set to the upstream model name) and returns an OpenAI
``chat.completion`` dict or yields ``chat.completion.chunk`` dicts. The router turns provider
errors into ``pipeline.errors`` problems; providers never raise pipeline errors themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, AsyncIterator, Literal, Mapping, Protocol, runtime_checkable

ProviderKind = Literal["openai", "azure", "anthropic"]
PROVIDER_KINDS: tuple[str, ...] = ("openai", "azure", "anthropic")


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One upstream provider. ``models`` lists the model names routed here ("*" = any)."""

    name: str
    kind: ProviderKind
    base_url: str
    api_key: str | None = None
    models: tuple[str, ...] = ("*",)
    api_version: str | None = None                          # azure
    deployments: Mapping[str, str] = field(default_factory=dict)   # azure: model -> deployment
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0                            # longest silence between two reads
    total_timeout_s: float = 300.0
    max_retries: int = 2
    backoff_base_s: float = 0.2
    fallback: str | None = None
    breaker_failures: int = 5                               # 0 disables the circuit breaker
    breaker_reset_s: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # model -> (in, out) per 1k

    def __post_init__(self) -> None:
        if self.kind not in PROVIDER_KINDS:
            raise ValueError(f"provider {self.name!r}: kind must be one of {', '.join(PROVIDER_KINDS)}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"provider {self.name!r}: base_url must be an http(s) URL")
        if self.max_retries < 0 or self.breaker_failures < 0:
            raise ValueError(f"provider {self.name!r}: max_retries and breaker_failures must be >= 0")

    @classmethod
    def from_settings(cls, settings: Any) -> "ProviderConfig":
        """Build from any object carrying the same attribute names (e.g. ``proxy.config.ProviderSettings``)."""
        values = {f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)}
        values["models"] = tuple(values.get("models") or ("*",))
        values["deployments"] = dict(values.get("deployments") or {})
        values["headers"] = dict(values.get("headers") or {})
        values["prices"] = {m: (float(p[0]), float(p[1])) for m, p in (values.get("prices") or {}).items()}
        return cls(**values)

    def __repr__(self) -> str:  # never print the API key
        return f"ProviderConfig(name={self.name!r}, kind={self.kind!r}, base_url={self.base_url!r})"


# --- errors ---------------------------------------------------------------------------------


class ProviderError(Exception):
    """Base class of everything a provider raises. Messages never contain the API key."""

    retryable: bool = False


class ProviderHTTPError(ProviderError):
    """The upstream answered with an error status (or an error event before any chunk)."""

    def __init__(self, status: int, message: str, retryable: bool, *,
                 retry_after_s: float | None = None, error_type: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.error_type = error_type
        self.code = code


class ProviderTimeout(ProviderError):
    """No byte arrived within ``read_timeout_s`` or the whole call exceeded ``total_timeout_s``."""


class ProviderConnectError(ProviderError):
    """The connection could not be made or was dropped before a response arrived."""

    retryable = True


class StreamInterrupted(ProviderError):
    """A stream broke after it had yielded its first chunk; the caller ends its SSE with an error."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"stream from provider {provider!r} interrupted: {reason}")
        self.provider = provider
        self.reason = reason


# --- the interface --------------------------------------------------------------------------


@runtime_checkable
class Provider(Protocol):
    name: str
    kind: str
    config: ProviderConfig

    async def chat(self, body: dict[str, Any], *, request_id: str) -> dict[str, Any]: ...

    def chat_stream(self, body: dict[str, Any], *, request_id: str) -> AsyncIterator[dict[str, Any]]: ...

    def chat_stream_batches(self, body: dict[str, Any], *,
                            request_id: str) -> AsyncIterator[list[dict[str, Any]]]: ...

    async def embeddings(self, body: dict[str, Any], *, request_id: str) -> dict[str, Any]: ...

    async def list_models(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...
