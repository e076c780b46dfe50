"""Provider clients (OpenAI-compatible, Azure OpenAI, Anthropic) and the router in front of them."""
from .base import (
    Provider,
    ProviderConfig,
    ProviderConnectError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    StreamInterrupted,
)
from .router import ModelNotFound, ProviderRouter, Route, RouterObserver, UpstreamRejected, UpstreamTrace

__all__ = [
    "ModelNotFound",
    "Provider",
    "ProviderConfig",
    "ProviderConnectError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderRouter",
    "ProviderTimeout",
    "Route",
    "RouterObserver",
    "StreamInterrupted",
    "UpstreamRejected",
    "UpstreamTrace",
]
