"""`GET /ws`: live events of the caller's organization as CloudEvents 1.0 over a WebSocket.

Authenticate with the `Authorization` header (access token or API key, `audit:read` needed) or
with a first frame `{"type": "authenticate", "token": "..."}` within 10 s. Then:

    -> {"type": "subscribe", "channels": ["gateway.request.blocked", "key.revoked", "*"]}
    <- {"type": "subscribed", "channels": [...]}
    -> {"type": "unsubscribe", "channels": [...]}          -> {"type": "ping"}  <- {"type": "pong"}
    <- {"specversion": "1.0", "type": "key.revoked", "source": "/casemate/tenants/<id>", "id": ..., ...}

A channel names a public event type; `aegis.`-prefixed names (`aegis.kill_switch.activated`) are
accepted as aliases. Each worker keeps its sockets in a `LiveHub`; the dispatcher that reads an
event publishes it on Redis (`AdminSettings.live_channel`) when Redis is configured, and every
worker's hub delivers it to its own sockets, so a socket on any worker sees every event of its
organization. A socket whose send queue fills (a slow consumer) is closed with code 1013.
WebSocket pings every 20 s keep idle connections alive.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from admin_api.authn import Authenticator
from admin_api.context import ISSUER, SETTINGS, STORE, Ctx, Principal
from admin_api.http import ApiError
from admin_api.routing import RouteTable

log = logging.getLogger("casemate.admin.ws")

routes = RouteTable()

QUEUE_LIMIT = 256
MAX_CHANNELS = 64
AUTH_TIMEOUT_S = 10.0
CLOSE_SLOW = 1013              # "try again later": the consumer did not keep up
CLOSE_POLICY = int(WSCloseCode.POLICY_VIOLATION)
_SEEN = 4096                   # recent event ids, so a duplicate publication is delivered once


def cloud_event(event: dict[str, Any], event_type: str) -> dict[str, Any]:
    """A CloudEvents 1.0 (structured JSON) envelope of an audit event."""
    ts = event["ts"]
    return {
        "specversion": "1.0", "id": event["id"], "source": f"/casemate/tenants/{event['tenant_id']}",
        "type": event_type, "time": ts if isinstance(ts, str) else ts.isoformat().replace("+00:00", "Z"),
        "subject": event.get("resource_id"), "datacontenttype": "application/json",
        "data": {k: event.get(k) for k in ("actor", "action", "resource_type", "resource_id", "outcome",
                                           "request_id", "details")},
    }


def _matches(channels: set[str], event_type: str) -> bool:
    return "*" in channels or event_type in channels or f"aegis.{event_type}" in channels


@dataclass(eq=False)
class _Socket:
    tenant_id: str
    ws: web.WebSocketResponse
    channels: set[str] = field(default_factory=set)
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    dropped: bool = False


class LiveHub:
    """The sockets of this worker, by organization."""

    def __init__(self, redis: Any = None, channel: str = "cm:live") -> None:
        self._sockets: dict[str, set[_Socket]] = {}
        self._redis = redis
        self._channel = channel
        self._seen: deque[str] = deque(maxlen=_SEEN)
        self._seen_set: set[str] = set()

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._sockets.values())

    def add(self, sock: _Socket) -> None:
        self._sockets.setdefault(sock.tenant_id, set()).add(sock)

    def remove(self, sock: _Socket) -> None:
        group = self._sockets.get(sock.tenant_id)
        if group is not None:
            group.discard(sock)
            if not group:
                del self._sockets[sock.tenant_id]

    async def publish(self, event: dict[str, Any], event_type: str) -> None:
        """Dispatcher sink: to every worker through Redis when configured, else to this worker's sockets."""
        doc = cloud_event(event, event_type)
        if self._redis is not None:
            await self._redis.publish(self._channel, orjson.dumps(doc))
        else:
            self.deliver(doc)

    def deliver(self, doc: dict[str, Any]) -> None:
        """Queue a CloudEvent for the matching sockets of its organization; slow sockets are dropped."""
        if doc["id"] in self._seen_set:
            return
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(doc["id"])
        self._seen_set.add(doc["id"])
        tenant_id = doc["source"].rsplit("/", 1)[-1]
        frame: str | None = None
        for sock in list(self._sockets.get(tenant_id, ())):
            if sock.dropped or not _matches(sock.channels, doc["type"]):
                continue
            frame = frame or orjson.dumps(doc).decode()
            try:
                sock.queue.put_nowait(frame)
            except asyncio.QueueFull:
                sock.dropped = True
                self.remove(sock)
                asyncio.get_running_loop().create_task(
                    sock.ws.close(code=CLOSE_SLOW, message=b"slow consumer: events were not read in time"))

    async def listen(self, stopping: asyncio.Event | None = None) -> None:
        """Deliver what any worker published on Redis (runs for the app's lifetime when Redis is configured)."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._channel)
        try:
            while stopping is None or not stopping.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is None or message.get("type") != "message":
                    continue
                try:
                    self.deliver(orjson.loads(message["data"]))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    log.warning("ignoring a malformed live event on %s", self._channel)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


LIVE_HUB: web.AppKey[LiveHub] = web.AppKey("live_hub", LiveHub)


async def _principal(request: web.Request, token: str | None) -> Principal:
    app = request.app
    auth = Authenticator(app[STORE], app[SETTINGS], app[ISSUER])
    if token is not None:
        request = request.clone(headers={**request.headers, "Authorization": f"Bearer {token}"})
    principal = await auth(request)
    if "audit:read" not in principal.permissions:
        raise ApiError(403, "missing permission audit:read", code="AUTH-003", title="Permission denied",
                       slug="forbidden")
    return principal


async def _first_frame_token(ws: web.WebSocketResponse) -> str | None:
    try:
        msg = await asyncio.wait_for(ws.receive(), timeout=AUTH_TIMEOUT_S)
    except TimeoutError:
        return None
    if msg.type != WSMsgType.TEXT:
        return None
    try:
        doc = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and doc.get("type") == "authenticate" and isinstance(doc.get("token"), str):
        return str(doc["token"])
    return None


async def _writer(sock: _Socket) -> None:
    while True:
        await sock.ws.send_str(await sock.queue.get())


def _channels(doc: dict[str, Any]) -> list[str] | None:
    channels = doc.get("channels")
    if not isinstance(channels, list) or not all(isinstance(c, str) and 0 < len(c) <= 100 for c in channels):
        return None
    return channels[:MAX_CHANNELS]


@routes.route("GET", "/ws", summary="Live events of the organization (WebSocket, CloudEvents 1.0)", tag="events",
              public=True, envelope=False, response={"type": "string"},
              description=(__doc__ or "").split("\n\n", 1)[1].strip())
async def live_events(ctx: Ctx) -> Any:
    request = ctx.request
    principal = None
    if request.headers.get("Authorization"):
        principal = await _principal(request, None)     # a refusal is a plain 401/403 problem
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    if principal is None:
        token = await _first_frame_token(ws)
        try:
            principal = await _principal(request, token) if token else None
        except ApiError:
            principal = None
        if principal is None:
            await ws.close(code=CLOSE_POLICY, message=b"authentication failed")
            return ws
        await ws.send_str(orjson.dumps({"type": "authenticated", "tenant_id": principal.tenant_id}).decode())
    hub = request.app[LIVE_HUB]
    sock = _Socket(principal.tenant_id, ws)
    hub.add(sock)
    writer = asyncio.create_task(_writer(sock))
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                doc = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                doc = None
            kind = doc.get("type") if isinstance(doc, dict) else None
            if kind == "ping":
                await ws.send_str('{"type":"pong"}')
            elif kind in ("subscribe", "unsubscribe") and (names := _channels(doc)) is not None:  # type: ignore[arg-type]
                if kind == "subscribe":
                    sock.channels.update(names)
                else:
                    sock.channels.difference_update(names)
                await ws.send_str(orjson.dumps({"type": f"{kind}d", "channels": sorted(sock.channels)}).decode())
            else:
                await ws.send_str('{"type":"error","message":"expected subscribe, unsubscribe or ping"}')
    finally:
        hub.remove(sock)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    return ws
