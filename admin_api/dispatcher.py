"""The event dispatcher: audit events are the event stream; this turns them into outbound events.

One loop follows the transparency log's commit-ordered `seq` (its cursor is kept in the store, so
a restart resumes where it stopped and loses nothing), maps each audit action to a public event
type and hands the event to every sink (webhook fan-out, notifications, /ws live events, trust score). Other loops deliver due webhook
deliveries (retries with exponential backoff and jitter, then dead-letter; counted in admin_api.metrics),
apply retention policies, and sign tree heads of logs that grew.

Every worker may run a dispatcher: fan-out is idempotent (one delivery per webhook and event) and
deliveries are claimed with a lease, so several workers never send one attempt twice.
Polling every `dispatch_poll_s`; `wake()` (or a message on Redis `cm:audit`) makes it look now.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from aiohttp import web

from admin_api import metrics
from admin_api.notify import Notifier
from admin_api.resources.trust import TrustRecalculator
from admin_api.resources.ws import LIVE_HUB, LiveHub
from admin_api.settings import AdminSettings
from admin_api.store import Store
from admin_api.store.codec import utcnow
from admin_api.transparency import TransparencyLog
from admin_api.webhooks import parse_networks, retry_delay, send

log = logging.getLogger("casemate.admin.dispatch")

AUDIT_CHANNEL = "cm:audit"
CURSOR = "dispatcher"
BATCH = 200
SEND_CONCURRENCY = 8
LEASE_S = 60.0

# audit action -> public event type (actions not listed are not published)
PUBLIC_TYPES: dict[str, str] = {
    "gateway.request.blocked": "gateway.request.blocked",
    "gateway.request.completed": "gateway.request.completed",
    "check.pending": "check.pending",
    "check.decided": "check.decided",
    "check.blocked": "check.blocked",
    "agent.anomaly": "aegis.agent.anomaly",
    "aegis.agent.anomaly": "aegis.agent.anomaly",
    "kill_switch.set": "kill_switch.activated",
    "kill_switch.clear": "kill_switch.deactivated",
    "key.create": "key.created",
    "key.revoke": "key.revoked",
    "key.delete": "key.deleted",
    "policy.create": "policy.changed",
    "policy.update": "policy.changed",
    "policy.rollback": "policy.changed",
    "policy.delete": "policy.changed",
    "provider.create": "provider.changed",
    "provider.update": "provider.changed",
    "provider.delete": "provider.changed",
    "retention.purge": "audit.retention.purged",
    "access.denied": "access.denied",
    "trust.score.updated": "trust.score.updated",
}
EVENT_TYPES: tuple[str, ...] = tuple(sorted(set(PUBLIC_TYPES.values()) | {"webhook.test"}))
OPT_IN_TYPES = frozenset({"gateway.request.completed"})   # only sent to webhooks that name them

Sink = Callable[[dict[str, Any], str], Awaitable[None]]


def public_event_type(action: str) -> str | None:
    return PUBLIC_TYPES.get(action)


def event_payload(event: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The Standard Webhooks payload shape: type, timestamp, data."""
    data = {k: event.get(k) for k in ("id", "tenant_id", "actor", "action", "resource_type", "resource_id",
                                      "outcome", "request_id", "details")}
    return {"type": event_type, "timestamp": event["ts"], "data": data}


def wants(webhook: dict[str, Any], event_type: str) -> bool:
    types = webhook["event_types"]
    if types:
        return event_type in types
    return event_type not in OPT_IN_TYPES


async def deliver(store: Store, settings: AdminSettings, delivery: dict[str, Any]) -> dict[str, Any]:
    """Make one attempt of a delivery and record its outcome; returns the delivery as stored after."""
    tenant_id, webhook_id = delivery["tenant_id"], delivery["webhook_id"]
    webhook = await store.get_webhook(tenant_id, webhook_id)
    secret = await store.webhook_secret(tenant_id, webhook_id)
    attempt = await send(webhook["url"], secret, delivery["event_id"], delivery["payload"],
                         timeout_s=settings.webhook_timeout_s, allow=parse_networks(settings.webhook_allow_networks))
    attempts = delivery["attempts"] + 1
    outcome: metrics.WebhookOutcome
    if attempt.ok:
        status, nxt, outcome = "succeeded", None, "delivered"
    elif attempts >= settings.webhook_max_attempts:
        status, nxt, outcome = "dead", None, "dead_lettered"
    else:
        status, nxt = "pending", utcnow() + timedelta(seconds=retry_delay(attempts, base_s=settings.webhook_retry_base_s))
        outcome = "refused_ssrf" if attempt.refused else "failed_retrying"
    metrics.webhook_attempt(outcome, attempt.latency_ms / 1000)
    await store.record_attempt(delivery["id"], status=status, status_code=attempt.status_code, error=attempt.error,
                               latency_ms=round(attempt.latency_ms, 3), next_attempt_at=nxt)
    return await store.get_delivery(tenant_id, webhook_id, delivery["id"])


class EventDispatcher:
    def __init__(self, store: Store, settings: AdminSettings, tlog: TransparencyLog | None = None,
                 redis: Any = None) -> None:
        self._store = store
        self._settings = settings
        self._tlog = tlog
        self._redis = redis
        self._wake = asyncio.Event()
        self._due = asyncio.Event()             # set when deliveries were enqueued
        self._tasks: list[asyncio.Task[None]] = []
        self._sinks: list[Sink] = [self._webhook_sink]
        self._webhooks: dict[str, list[dict[str, Any]]] = {}
        self._loops: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = []
        self._stopping = asyncio.Event()

    def add_sink(self, sink: Sink) -> None:
        """Also hand every published event to `sink(event, public_type)` (notifications, live events)."""
        self._sinks.append(sink)

    def wake(self) -> None:
        """Look for new events now."""
        self._wake.set()

    def wake_delivery(self) -> None:
        """Look for due deliveries now."""
        self._due.set()

    def add_loop(self, loop: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        """Run `loop(stopping)` alongside the dispatcher's loops; it should return soon after `stopping` is set."""
        self._loops.append(loop)

    def start(self) -> None:
        self._stopping.clear()
        loops = [self._follow(), self._deliver_loop(), self._retention_loop(),
                 *(f(self._stopping) for f in self._loops)]
        if self._tlog is not None:
            loops.append(self._sign_loop())
        if self._redis is not None:
            loops.append(self._listen())
        self._tasks = [asyncio.create_task(c) for c in loops]

    async def stop(self, grace_s: float = 5.0) -> None:
        """Let every loop finish what it is doing (no transaction is cut in half), then cancel stragglers."""
        self._stopping.set()
        self._wake.set()
        self._due.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []

    async def _sleep(self, seconds: float, event: asyncio.Event | None = None) -> None:
        """Wait `seconds`, or less when `event` (default: new events) or a stop is signalled."""
        event = event or self._wake
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=seconds)
        if event is not self._stopping:
            event.clear()

    # ---- fan-out --------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Publish the events written since the cursor; returns how many were read."""
        cursor = await self._store.get_cursor(CURSOR)
        if cursor is None:                      # first start: begin at the present, not at history
            cursor = await self._store.last_seq()
            await self._store.set_cursor(CURSOR, cursor)
        batch = await self._store.events_after(cursor, BATCH)
        self._webhooks.clear()
        for seq, event in batch:
            event_type = public_event_type(event["action"])
            if event_type is not None and event["tenant_id"] is not None:
                for sink in self._sinks:
                    await sink(event, event_type)
            cursor = seq
        if batch:
            await self._store.set_cursor(CURSOR, cursor)
        return len(batch)

    async def _webhook_sink(self, event: dict[str, Any], event_type: str) -> None:
        tenant_id = event["tenant_id"]
        hooks = self._webhooks.get(tenant_id)
        if hooks is None:
            hooks = self._webhooks[tenant_id] = await self._store.active_webhooks(tenant_id)
        payload = event_payload(event, event_type)
        rows = [(tenant_id, h["id"], event["id"], event_type, payload) for h in hooks if wants(h, event_type)]
        if rows and await self._store.enqueue_deliveries(rows):
            self._due.set()

    async def _follow(self) -> None:
        while not self._stopping.is_set():
            try:
                read = await self.run_once()
            except Exception:
                log.exception("event dispatch failed; retrying")
                read = 0
            if read < BATCH:
                await self._sleep(self._settings.dispatch_poll_s)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(AUDIT_CHANNEL)
        try:
            while not self._stopping.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is not None and message.get("type") == "message":
                    self.wake()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    # ---- delivery -------------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Attempt every delivery due now (bounded concurrency); returns how many were attempted."""
        now = utcnow()
        claimed = await self._store.claim_due_deliveries(now=now, lease_until=now + timedelta(seconds=LEASE_S),
                                                         limit=SEND_CONCURRENCY * 4)
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def one(d: dict[str, Any]) -> None:
            async with gate:
                try:
                    await deliver(self._store, self._settings, d)
                except Exception:
                    log.exception("webhook delivery %s failed", d["id"])

        await asyncio.gather(*(one(d) for d in claimed))
        metrics.WEBHOOK_PENDING.set(await self._store.count_pending_deliveries())
        return len(claimed)

    async def _deliver_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sent = await self.deliver_due()
            except Exception:
                log.exception("webhook delivery loop failed; retrying")
                sent = 0
            if sent == 0:
                await self._sleep(self._settings.dispatch_poll_s, self._due)

    # ---- retention and tree heads ---------------------------------------------------------------

    async def purge_all(self) -> int:
        from admin_api.resources.audit import purge_tenant

        tenants = await self._store.retention_tenants()
        for tenant_id in tenants:
            await purge_tenant(self._store, tenant_id, "system:retention")
        return len(tenants)

    async def _retention_loop(self) -> None:
        while True:
            await self._sleep(self._settings.retention_interval_s, self._stopping)
            if self._stopping.is_set():
                return
            try:
                await self.purge_all()
            except Exception:
                log.exception("retention purge failed")

    async def sign_grown_logs(self) -> int:
        assert self._tlog is not None
        signed = 0
        for log_id in await self._store.log_ids():
            head = await self._store.latest_tree_head(log_id)
            if head is None or head["tree_size"] != await self._store.log_size(log_id):
                await self._tlog.sign_head(log_id)
                signed += 1
        return signed

    async def _sign_loop(self) -> None:
        while True:
            await self._sleep(self._settings.sth_max_age_s, self._stopping)
            if self._stopping.is_set():
                return
            try:
                await self.sign_grown_logs()
            except Exception:
                log.exception("signing tree heads failed")


DISPATCHER: web.AppKey[EventDispatcher] = web.AppKey("event_dispatcher", EventDispatcher)
NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier", Notifier)


def install(app: web.Application, store: Store, settings: AdminSettings, tlog: TransparencyLog) -> EventDispatcher:
    """Run a dispatcher for the app's lifetime (started on startup, stopped on cleanup)."""
    redis = settings.redis if settings.redis is not None else getattr(settings.runtime, "redis", None)
    dispatcher = app[DISPATCHER] = EventDispatcher(store, settings, tlog, redis)
    notifier = app[NOTIFIER] = Notifier(store, settings)
    dispatcher.add_sink(notifier.sink)
    dispatcher.add_loop(notifier.run)
    trust = TrustRecalculator(store, interval_s=max(1.0, settings.dispatch_poll_s * 5))
    dispatcher.add_sink(trust.sink)
    dispatcher.add_loop(trust.run)
    hub = app[LIVE_HUB] = LiveHub(redis, settings.live_channel)
    dispatcher.add_sink(hub.publish)
    if redis is not None:
        dispatcher.add_loop(hub.listen)

    async def on_startup(_: web.Application) -> None:
        try:
            await store.backfill_transparency()
        except Exception:
            log.exception("transparency backfill failed; it runs again on the next start")
        dispatcher.start()

    async def on_cleanup(_: web.Application) -> None:
        await dispatcher.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return dispatcher
