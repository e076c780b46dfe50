"""Azure OpenAI: OpenAI's wire format behind per-deployment URLs, the ``api-key`` header and an
``api-version`` query parameter. Models map to deployments (default: the model name); the reply's
``model`` field is kept as Azure sends it."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .base import ProviderConfig
from .openai_compat import OpenAICompatProvider

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(OpenAICompatProvider):
    kind = "azure"

    def __init__(self, config: ProviderConfig, *, pool_size: int = 256) -> None:
        super().__init__(config, pool_size=pool_size)
        self._params = {"api-version": config.api_version or DEFAULT_API_VERSION}
        self._urls: dict[tuple[str, str], str] = {}

    def auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"api-key": key} if key else {}

    def deployment(self, model: str) -> str:
        return self.config.deployments.get(model, model)

    def _url(self, model: str, op: str) -> str:
        url = self._urls.get((model, op))
        if url is None:
            url = f"{self._base}/openai/deployments/{quote(self.deployment(model), safe='')}/{op}"
            if len(self._urls) < 1024:                   # bounded: models come from clients
                self._urls[(model, op)] = url
        return url

    def chat_url(self, model: str) -> str:
        return self._url(model, "chat/completions")

    def embeddings_url(self, model: str) -> str:
        return self._url(model, "embeddings")

    async def list_models(self) -> list[dict[str, Any]]:
        """The configured models and deployments; Azure's own listing names base models, not deployments."""
        names = [m for m in self.config.models if m != "*"]
        names += [m for m in self.config.deployments if m not in names]
        return [{"id": m, "object": "model", "created": 0, "owned_by": self.name} for m in names]
