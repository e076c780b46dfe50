"""Keeps the in-memory Directory in step with the store, off the hot path.

Start-up loads a full snapshot; then the change feed is polled (every
`directory_poll_s`, default 0.5 s) and, when Redis is configured, a pub/sub
message on `cm:changes` triggers an immediate poll, so every worker on every
host sees a revoked key or a kill switch within one second.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable

from pipeline.directory import Directory, KillSwitchRecord

log = logging.getLogger("casemate.directory")
CHANNEL = "cm:changes"


class DirectorySync:
    def __init__(self, store: Any, directory: Directory, *, poll_s: float = 0.5, redis: Any = None,
                 static_kill_switches: Iterable[KillSwitchRecord] = ()) -> None:
        self._store = store
        self._dir = directory
        self._poll_s = poll_s
        self._redis = redis
        self._static = tuple(static_kill_switches)
        self._nudge = asyncio.Event()
        self.on_provider_change: Any = None      # callable(tenant_id), set by the runtime
        self._tasks: list[asyncio.Task[None]] = []
        self.healthy = False

    async def load(self) -> None:
        snap = await self._store.load_directory()
        self._dir.load(snap)
        self._dir.set_kill_switches(tuple(snap.kill_switches) + self._static)
        self.healthy = True

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._poll_loop(), name="casemate-directory-poll"))
        if self._redis is not None:
            self._tasks.append(loop.create_task(self._listen(), name="casemate-directory-pubsub"))

    async def _poll_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._nudge.wait(), timeout=self._poll_s)
            except asyncio.TimeoutError:
                pass
            self._nudge.clear()
            try:
                await self.apply_changes()
                self.healthy = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep serving from the last good directory
                self.healthy = False
                log.warning("directory refresh failed: %s", exc.__class__.__name__)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for msg in pubsub.listen():
                    if msg.get("type") == "message":
                        self._nudge.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis down: polling still converges
                await asyncio.sleep(1.0)

    async def apply_changes(self) -> int:
        changes = await self._store.changes_since(self._dir.seq)
        if not changes:
            return 0
        by_kind: dict[str, set[str]] = {}
        for ch in changes:
            by_kind.setdefault(ch.kind, set()).add(ch.entity_id)
        d = self._dir
        if "tenant" in by_kind:
            got = {t.id: t for t in await self._store.get_tenant_records(sorted(by_kind["tenant"]))}
            for tid in by_kind["tenant"]:
                if tid in got:
                    d.upsert_tenant(got[tid])
                else:
                    d.tenants.pop(tid, None)
        if "key" in by_kind:
            got_k = {k.id: k for k in await self._store.get_key_records(sorted(by_kind["key"]))}
            for kid in by_kind["key"]:
                if kid in got_k:
                    d.upsert_key(got_k[kid])
                else:
                    d.remove_key(kid)
        if "policy" in by_kind:
            got_p = {p.id: p for p in await self._store.get_policy_records(sorted(by_kind["policy"]))}
            for pid in by_kind["policy"]:
                if pid in got_p:
                    d.upsert_policy(got_p[pid])
                else:
                    d.remove_policy(pid)
        if "provider" in by_kind and self.on_provider_change is not None:
            for tid in sorted({ch.tenant_id for ch in changes if ch.kind == "provider" and ch.tenant_id}):
                self.on_provider_change(tid)
        if "kill_switch" in by_kind:
            d.set_kill_switches(tuple(await self._store.kill_switch_records()) + self._static)
        d.seq = max(ch.seq for ch in changes)
        return len(changes)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
