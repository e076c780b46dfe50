"""Wires one worker's data plane: store, directory, limiter, cache, providers, audit, chain."""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from pipeline.chain import Chain
from pipeline.directory import Directory, KillSwitchRecord
from pipeline.ratelimit import LocalRateLimiter, RedisRateLimiter
from pipeline.cache import LocalCache, RedisCache
from pipeline.secrets_box import derive_key
from pipeline.stages.audit import AuditStage
from pipeline.stages.authenticate import AuthenticateStage
from pipeline.stages.cache import CacheLookupStage, CacheStoreStage
from pipeline.stages.kill_switch import KillSwitchStage
from pipeline.stages.parse import ParseStage
from pipeline.stages.policy import PolicyStage
from pipeline.stages.rate_limit import LocalRateLimitStage, RateLimitStage
from pipeline.stages.request_id import RequestIdStage
from pipeline.stages.upstream import UpstreamStage
from proxy.audit_writer import AuditWriter
from proxy.config import Settings
from proxy.directory_sync import DirectorySync

log = logging.getLogger("casemate.runtime")


def load_master_secret(settings: Settings) -> bytes:
    """CASEMATE_SECRET_KEY, else `<data_dir>/secret_key` (created 0600 on first start)."""
    if settings.secret_key:
        raw = settings.secret_key.strip()
        for decode in (bytes.fromhex, base64.urlsafe_b64decode):
            try:
                key = decode(raw)
                if len(key) >= 32:
                    return key
            except ValueError:
                continue
        key = raw.encode()
        if len(key) < 32:
            from proxy.config import ConfigError

            raise ConfigError("CASEMATE_SECRET_KEY: must carry at least 32 bytes (hex, base64 or text)")
        return key
    path = Path(settings.data_dir) / "secret_key"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


def static_kill_switches(settings: Settings) -> list[KillSwitchRecord]:
    ks = settings.kill_switch
    out = [KillSwitchRecord("global", "*", "switched off in the configuration")] if ks.global_ else []
    for scope, targets in (("tenant", ks.tenants), ("key", ks.keys), ("provider", ks.providers), ("model", ks.models)):
        out += [KillSwitchRecord(scope, t, "switched off in the configuration") for t in targets]
    return out


async def prepare_store(settings: Settings, store: Any = None) -> None:
    """Once per start, before workers fork: apply migrations and seed the config's bootstrap keys."""
    from admin_api.store import open_store

    own = store is None
    if own:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        store = await open_store(settings.effective_database_url)
    try:
        hash_key = derive_key(load_master_secret(settings), "api-key-hash")
        for bk in settings.keys:
            await store.seed_key(bk.tenant, bk.key, hash_key, name=bk.name, rpm=bk.rpm, tpm=bk.tpm,
                                 role=bk.role, allowed_models=bk.allowed_models)
    finally:
        if own:
            await store.close()


class Runtime:
    """Everything one worker needs; `start()` / `close()` bracket its life."""

    def __init__(self, settings: Settings, *, store: Any = None, detectors: Any = None, worker: int = 0) -> None:
        self.settings = settings
        self.worker = worker                    # this process's index among settings.workers (own journals)
        self.master = load_master_secret(settings)
        self.hash_key = derive_key(self.master, "api-key-hash")
        self.pii_key = derive_key(self.master, "pii-hmac")
        self.store = store
        self._own_store = store is None
        self.redis: Any = None
        self.directory = Directory(dict(settings.policy))
        self.sync: DirectorySync | None = None
        self.router: Any = None
        self.limiter: Any = None
        self.cache: Any = None
        self.audit: AuditWriter | None = None
        self.chain: Chain | None = None
        self.detectors = detectors
        self.remote_classifier: Any = None
        self._flusher: asyncio.Task[None] | None = None
        self.ready = False

    async def start(self) -> None:
        from admin_api.store import open_store
        from proxy import metrics
        from proxy.providers.base import ProviderConfig
        from proxy.providers.router import ProviderRouter
        from proxy.tenant_providers import Routing

        s = self.settings
        Path(s.data_dir).mkdir(parents=True, exist_ok=True)
        if self.store is None:
            self.store = await open_store(s.effective_database_url, master_key=self.master)
        if s.redis_url:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(s.redis_url, socket_connect_timeout=2, socket_timeout=2,
                                           health_check_interval=30)
            self.limiter = RedisRateLimiter(self.redis, fail_open=s.ratelimit_fail_open)
            self.cache = RedisCache(self.redis)
        else:
            self.limiter = LocalRateLimiter()
            self.cache = LocalCache(s.cache_max_entries)
        self.sync = DirectorySync(self.store, self.directory, poll_s=min(s.directory_poll_s, 0.5),
                                  redis=self.redis, static_kill_switches=static_kill_switches(s))
        await self.sync.load()
        self.sync.start()
        configs = [ProviderConfig.from_settings(p) for p in s.providers]
        observer = metrics.UpstreamObserver()
        self.router = Routing(ProviderRouter(configs, s.default_provider, observer=observer), self.store, observer)
        await self.router.load_all(list(self.directory.tenants))
        self.sync.on_provider_change = self.router.reload_soon
        on_written = None
        if self.redis is not None:
            redis = self.redis

            async def on_written() -> None:          # wakes the audit-event dispatcher on every host
                await redis.publish("cm:audit", "gateway")
        self.audit = AuditWriter(self.store, Path(s.data_dir) / "journal", max_queue=s.audit_queue_size,
                                 batch_size=s.audit_batch_size, flush_interval_s=s.audit_flush_interval_s,
                                 token_sink=self.limiter.add_tokens, metrics=metrics.AuditMetrics(),
                                 on_written=on_written, worker=self.worker, workers=s.workers)
        self.audit.start()
        if self.detectors is None:
            from proxy.detection import build_detectors

            self.detectors = build_detectors()
        if s.injection_remote_url:
            from pipeline.remote_classifier import RemoteClassifier

            self.remote_classifier = RemoteClassifier(s.injection_remote_url, timeout_s=s.injection_remote_timeout_s)
        self.chain = self.build_chain()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_metrics(), name="casemate-metrics-flush")
        self.ready = True

    async def _flush_metrics(self) -> None:
        from proxy.metrics import BufferedHistogram

        while True:
            await asyncio.sleep(1.0)
            BufferedHistogram.flush_all()

    def build_chain(self) -> Chain:
        from proxy import metrics

        s = self.settings
        from proxy.detection import detector_stages
        from proxy.providers.router import UpstreamTrace

        cache_counter = {True: metrics.CACHE.labels(result="hit"), False: metrics.CACHE.labels(result="miss")}
        det = detector_stages(self.detectors, self.pii_key, self.remote_classifier)
        pre_cache = [st for st in det if st.slot == "pre_cache"]
        post_upstream = [st for st in det if st.slot == "post_upstream"]
        stages: list[Any] = [
            RequestIdStage(),
            AuthenticateStage(self.directory, self.hash_key, jwt_verifier=self.jwt_verifier()),
            KillSwitchStage(self.directory),
            (LocalRateLimitStage if isinstance(self.limiter, LocalRateLimiter) else RateLimitStage)(
                self.limiter, s.default_rpm, s.default_tpm),
            ParseStage(s.max_body_bytes, s.max_messages),
            PolicyStage(self.directory, self.router),
            *pre_cache,
            CacheLookupStage(self.cache, on_result=lambda hit: cache_counter[hit].inc()),
            UpstreamStage(self.router.platform, trace_factory=UpstreamTrace),
            *post_upstream,
            CacheStoreStage(self.cache),
            AuditStage(self.audit, self.router.cost, completed_events=s.audit_completed_events),
        ]
        return Chain(stages, observe_factory=metrics.stage_observer)

    def jwt_verifier(self) -> Any:
        """Access JWTs issued by the admin API (EdDSA keys derived from the same master secret)."""
        from admin_api.tokens import TokenIssuer

        issuer = TokenIssuer(self.master)

        def verify(token: str) -> dict[str, Any]:
            c = issuer.verify_access(token)
            return {"sub": c.sub, "tid": c.tid, "role": c.role, "permissions": sorted(c.permissions), "typ": "user"}

        return verify

    def readiness(self) -> dict[str, bool]:
        return {
            "store": self.store is not None and (self.sync is not None and self.sync.healthy),
            "cache": self.cache is not None,
            "upstream": self.router is not None,
            "chain": self.chain is not None,
        }

    async def close(self) -> None:
        self.ready = False
        if self._flusher is not None:
            self._flusher.cancel()
        if self.audit is not None:
            await self.audit.close()
        if self.sync is not None:
            await self.sync.close()
        if self.router is not None:
            await self.router.close()
        if self.remote_classifier is not None:
            await self.remote_classifier.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.store is not None and self._own_store:
            await self.store.close()
