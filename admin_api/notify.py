"""Notifications: email (SMTP) and Slack (incoming webhook, Block Kit), per-topic digests, signed unsubscribes.

Events reach the `Notifier` through the dispatcher (`sink`): each subscribed channel gets an outbox
row. `flush()` sends, per (organization, topic, channel), at most one message every
`min_interval_s` of the subscription: the first event goes out alone, the ones that arrive within
the interval are sent together as one digest when it ends, so a flood of blocks is one message.
Every email carries an unsubscribe link with a signed token (HMAC-SHA256 under a key derived from
the master secret) naming organization, topic and recipient; RFC 8058 one-click headers included.
Both channels are SSRF-checked before each send and then connect only to the addresses the check
vetted (Slack through the webhooks' pinned resolver, SMTP through `_PinnedSocket`), while TLS is
still verified against the configured host name.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import orjson

from admin_api import metrics
from admin_api.settings import AdminSettings
from admin_api.store import NotFoundError, Store
from admin_api.store.codec import utcnow
from admin_api.webhooks import DestinationRefused, parse_networks, post, resolve_checked
from pipeline.secrets_box import derive_key

log = logging.getLogger("casemate.admin.notify")

CHANNELS = ("email", "slack")
DIGEST_LIST = 10                 # events spelled out in a digest; the rest are counted
RETRY_AFTER_FAILURE_S = 60.0


class ChannelFailed(Exception):
    """The channel did not take the message (not configured, or the service answered with an error)."""


class UnsubscribeTokens:
    """`tenant|topic|recipient` signed with HMAC-SHA256; base64url, no expiry (opting out stays valid)."""

    def __init__(self, master: bytes) -> None:
        self._key = derive_key(master, "notification-unsubscribe")

    def make(self, tenant_id: str, topic: str, recipient: str) -> str:
        body = f"{tenant_id}|{topic}|{recipient.lower()}".encode()
        mac = hmac.digest(self._key, body, "sha256")[:16]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def read(self, token: str) -> tuple[str, str, str] | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        body, mac = raw[:-16], raw[-16:]
        if len(raw) <= 16 or not hmac.compare_digest(mac, hmac.digest(self._key, body, "sha256")[:16]):
            return None
        parts = body.decode(errors="replace").split("|")
        return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _line(event: dict[str, Any]) -> str:
    data = event.get("data", {})
    what = data.get("resource_type") or ""
    rid = data.get("resource_id") or ""
    return f"{event.get('timestamp')}  {data.get('action')}  {what} {rid}  by {data.get('actor')}".rstrip()


def subject_of(topic: str, events: list[dict[str, Any]]) -> str:
    if len(events) == 1:
        return f"[Casemate] {topic}"
    return f"[Casemate] {len(events)} x {topic} (digest)"


def email_text(topic: str, events: list[dict[str, Any]], unsubscribe_url: str) -> str:
    lines = [f"{len(events)} event(s) of type {topic}:", ""]
    lines += [_line(e) for e in events[:DIGEST_LIST]]
    if len(events) > DIGEST_LIST:
        lines.append(f"... and {len(events) - DIGEST_LIST} more (see the audit log)")
    lines += ["", f"Unsubscribe from {topic}: {unsubscribe_url}"]
    return "\n".join(lines)


def slack_message(topic: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A Block Kit message: header, one section per event (up to DIGEST_LIST), a context footer."""
    title = topic if len(events) == 1 else f"{len(events)} x {topic}"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
    for event in events[:DIGEST_LIST]:
        data = event.get("data", {})
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Action*\n{data.get('action')}"},
            {"type": "mrkdwn", "text": f"*Actor*\n{data.get('actor')}"},
            {"type": "mrkdwn", "text": f"*Resource*\n{data.get('resource_type') or '-'} {data.get('resource_id') or ''}"},
            {"type": "mrkdwn", "text": f"*When*\n{event.get('timestamp')}"},
        ]})
    if len(events) > DIGEST_LIST:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {len(events) - DIGEST_LIST} more in the audit log"}]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "Casemate"}]})
    return {"text": f"Casemate: {title}", "blocks": blocks}


class _PinnedSocket(smtplib.SMTP):
    """Connects to addresses vetted beforehand (in order, first that answers) instead of resolving the name
    again, so DNS cannot answer differently between the SSRF check and the connection. `_host` stays the
    name: SMTP_SSL and STARTTLS send it as SNI and verify the certificate against it."""

    _addresses: tuple[str, ...] = ()

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        error: OSError = OSError(f"no vetted address for {host}")
        for address in self._addresses:
            try:
                return socket.create_connection((address, port), timeout, self.source_address)
            except OSError as exc:
                error = exc
        raise error


class _PinnedSMTP(_PinnedSocket):
    def __init__(self, host: str, port: int, addresses: Sequence[str], timeout: float) -> None:
        self._addresses = tuple(addresses)
        super().__init__(host, port, timeout=timeout)


class _PinnedSMTPS(smtplib.SMTP_SSL, _PinnedSocket):
    """Implicit TLS: SMTP_SSL wraps the socket `_PinnedSocket` opened (MRO: SMTP_SSL, _PinnedSocket, SMTP)."""

    def __init__(self, host: str, port: int, addresses: Sequence[str], timeout: float,
                 context: ssl.SSLContext) -> None:
        self._addresses = tuple(addresses)
        super().__init__(host, port, timeout=timeout, context=context)


def _smtp_send(config: dict[str, Any], password: str | None, message: EmailMessage, timeout_s: float,
               addresses: Sequence[str]) -> None:
    """Send `message` through the configured server, connecting only to `addresses` (from `resolve_checked`)."""
    host, port = config["host"], int(config.get("port", 587))
    security = config.get("security", "starttls")
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if security == "tls":
        smtp = _PinnedSMTPS(host, port, addresses, timeout_s, context)
    else:
        smtp = _PinnedSMTP(host, port, addresses, timeout_s)
    with smtp:
        if security == "starttls":
            smtp.starttls(context=context)
        if config.get("username"):
            smtp.login(config["username"], password or "")
        smtp.send_message(message)


class Notifier:
    def __init__(self, store: Store, settings: AdminSettings) -> None:
        self._store = store
        self._settings = settings
        self.tokens = UnsubscribeTokens(settings.master_key)
        self._retry_at: dict[tuple[str, str, str], float] = {}

    async def sink(self, event: dict[str, Any], event_type: str) -> None:
        """Queue `event` for every enabled channel its organization subscribed `event_type` to."""
        tenant_id = event["tenant_id"]
        try:
            sub = await self._store.get_subscription(tenant_id, event_type)
        except NotFoundError:            # nobody subscribed to this topic
            return
        enabled = {i["channel"] for i in await self._store.list_integrations(tenant_id) if i["enabled"]}
        from admin_api.dispatcher import event_payload

        payload = event_payload(event, event_type)
        rows = [(tenant_id, event_type, ch, event["id"], payload) for ch in sub["channels"] if ch in enabled]
        if rows:
            await self._store.enqueue_notifications(rows)

    async def flush(self) -> int:
        """Send what is due; returns the number of messages sent."""
        sent = 0
        now = utcnow()
        for group in await self._store.pending_notification_groups():
            tenant_id, topic, channel = group
            if self._retry_at.get(group, 0.0) > time.monotonic():
                continue
            try:
                sub = await self._store.get_subscription(tenant_id, topic)
            except NotFoundError:        # unsubscribed since: drop what was queued
                items = await self._store.unsent_notifications(tenant_id, topic, channel)
                await self._store.mark_notified(tenant_id, topic, channel, [i["id"] for i in items])
                continue
            last = await self._store.last_notified(tenant_id, topic, channel)
            if last is not None and (now - last).total_seconds() < sub["min_interval_s"]:
                continue
            items = await self._store.unsent_notifications(tenant_id, topic, channel)
            if not items:
                continue
            try:
                await self.deliver(tenant_id, topic, channel, [i["event"] for i in items])
            except Exception as exc:  # noqa: BLE001 - a failed channel retries later; the outbox keeps the events
                log.warning("notification %s/%s for %s failed: %s", channel, topic, tenant_id, exc)
                self._retry_at[group] = time.monotonic() + RETRY_AFTER_FAILURE_S
                continue
            self._retry_at.pop(group, None)
            await self._store.mark_notified(tenant_id, topic, channel, [i["id"] for i in items])
            sent += 1
        return sent

    async def deliver(self, tenant_id: str, topic: str, channel: str, events: list[dict[str, Any]]) -> None:
        """Send one message (or one per email recipient) and count it; raises when the channel refused it."""
        try:
            await self._send(tenant_id, topic, channel, events)
        except DestinationRefused:
            metrics.notification(channel, "refused_ssrf")
            raise
        except Exception:
            metrics.notification(channel, "failed")
            raise
        metrics.notification(channel, "sent")

    async def _send(self, tenant_id: str, topic: str, channel: str, events: list[dict[str, Any]]) -> None:
        integration = await self._store.get_integration(tenant_id, channel)
        secret = await self._store.integration_secret(tenant_id, channel)
        allow = parse_networks(self._settings.webhook_allow_networks)
        if channel == "slack":
            if not secret:
                raise ChannelFailed("no Slack webhook URL is configured")
            attempt = await post(secret, orjson.dumps(slack_message(topic, events)),
                                 {"Content-Type": "application/json"}, timeout_s=self._settings.webhook_timeout_s,
                                 allow=allow)
            if attempt.refused:
                raise DestinationRefused(attempt.error or "the Slack webhook URL was refused")
            if not attempt.ok:
                raise ChannelFailed(attempt.error or "Slack refused the message")
            return
        config = integration["config"]
        vetted = [r["host"] for r in await resolve_checked(config["host"], int(config.get("port", 587)), allow)]
        opted_out = await self._store.optouts(tenant_id, topic)
        for recipient in config.get("to", []):
            if recipient.lower() in opted_out:
                continue
            token = self.tokens.make(tenant_id, topic, recipient)
            url = f"{self._settings.public_base_url}/api/v1/notifications/unsubscribe?token={quote(token)}"
            message = EmailMessage()
            message["From"] = config["from"]
            message["To"] = recipient
            message["Subject"] = subject_of(topic, events)
            message["List-Unsubscribe"] = f"<{url}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            message.set_content(email_text(topic, events, url))
            await asyncio.to_thread(_smtp_send, config, secret, message, self._settings.webhook_timeout_s, vetted)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.flush()
            except Exception:
                log.exception("notification flush failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self._settings.dispatch_poll_s)

