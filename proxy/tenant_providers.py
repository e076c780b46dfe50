"""Per-tenant upstream providers (managed through the admin API) next to the platform's own.

Each tenant with active providers gets its own `ProviderRouter` (pooled sessions, retries,
breakers), built off the hot path from the store (credentials decrypted only here) and rebuilt
when the change feed reports a provider change. Resolution: the tenant's providers first (by
configured model name, `provider/model`, or a `*` provider), then the platform's.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from proxy.providers.base import ProviderConfig
from proxy.providers.router import ModelNotFound, ProviderRouter, Route

log = logging.getLogger("casemate.providers")


def config_from_row(row: dict[str, Any], credentials: dict[str, Any] | None) -> ProviderConfig:
    settings = row.get("settings") or {}
    models = tuple(m["name"] for m in row.get("models") or () if m.get("name")) or ("*",)
    prices = {m["name"]: (float(m.get("input_per_1k") or 0.0), float(m.get("output_per_1k") or 0.0))
              for m in row.get("models") or () if m.get("name")}
    extra: dict[str, Any] = {}
    if settings.get("timeout_s"):
        extra["read_timeout_s"] = float(settings["timeout_s"])
    return ProviderConfig(name=row["name"], kind=row["kind"], base_url=row["base_url"],
                          api_key=(credentials or {}).get("api_key"), models=models,
                          api_version=settings.get("api_version") or ("2024-10-21" if row["kind"] == "azure" else None),
                          headers=dict(settings.get("headers") or {}), prices=prices, **extra)


class Routing:
    """Resolves (router, route) for a tenant and model; the hot path only reads dicts."""

    def __init__(self, platform: ProviderRouter, store: Any = None, observer: Any = None) -> None:
        self.platform = platform
        self._store = store
        self._observer = observer
        self._tenants: dict[str, ProviderRouter] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def resolve(self, model: str, tenant_id: str | None = None) -> tuple[ProviderRouter, Route]:
        router = self._tenants.get(tenant_id) if tenant_id else None
        if router is not None:
            try:
                return router, router.resolve(model)
            except ModelNotFound:
                pass
        return self.platform, self.platform.resolve(model)

    def cost(self, provider: str | None, model: str | None, prompt: int, completion: int,
             tenant_id: str | None = None) -> float:
        router = self._tenants.get(tenant_id) if tenant_id else None
        if router is not None and provider in router.providers:
            return router.cost(provider, model or "", prompt, completion)
        return self.platform.cost(provider or "", model or "", prompt, completion)

    async def load_all(self, tenant_ids: list[str]) -> None:
        for tid in tenant_ids:
            await self.reload(tid)

    async def reload(self, tenant_id: str) -> None:
        """Rebuild one tenant's router from the store (active providers only)."""
        if self._store is None:
            return
        configs = []
        after = None
        while True:
            page = await self._store.list_providers(tenant_id, limit=200, after=after)
            for row in page.items:
                if row["status"] != "active":
                    continue
                creds = await self._store.get_provider_credentials(tenant_id, row["id"])
                try:
                    configs.append(config_from_row(row, creds))
                except ValueError as exc:
                    log.warning("tenant %s provider %s skipped: %s", tenant_id, row["name"], exc)
            if not page.has_more:
                break
            after = page.next_after
        old = self._tenants.pop(tenant_id, None)
        if configs:
            self._tenants[tenant_id] = ProviderRouter(configs, None, observer=self._observer)
        if old is not None:
            self._close_later(old)

    def reload_soon(self, tenant_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(tenant_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close_later(self, router: ProviderRouter) -> None:
        async def close() -> None:
            await asyncio.sleep(30)          # let in-flight calls on the old pools finish
            await router.close()

        task = asyncio.get_running_loop().create_task(close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def list_models(self, tenant_id: str | None) -> list[dict[str, Any]]:
        models = list((await self.platform.list_models()).get("data", []))
        router = self._tenants.get(tenant_id) if tenant_id else None
        if router is not None:
            seen = {m["id"] for m in models}
            models += [m for m in (await router.list_models()).get("data", []) if m["id"] not in seen]
        return models

    @property
    def ready(self) -> bool:
        return self.platform.ready

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for router in self._tenants.values():
            await router.close()
        self._tenants.clear()
        await self.platform.close()
