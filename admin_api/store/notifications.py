"""Notification integrations (email, Slack), topic subscriptions, opt-outs and the digest outbox.

The integration secret (SMTP password or Slack incoming-webhook URL) is sealed like provider
credentials (purpose "notification-secrets", bound to tenant and channel) and never returned.
The outbox holds one row per (channel, event); a row is sent once, alone or in a digest.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Row
from admin_api.store.base import StoreBase
from admin_api.store.codec import dt_value, json_value, str_tuple, utcnow
from admin_api.store.crypto import SecretBox
from admin_api.store.errors import NotFoundError

NOTIFICATION_SECRETS = "notification-secrets"


def integration_row(r: Row) -> dict[str, Any]:
    return {"channel": r["channel"], "config": json_value(r["config"]) or {}, "enabled": bool(r["enabled"]),
            "has_secret": r["secret_enc"] is not None, "updated_at": dt_value(r["updated_at"])}


def subscription_row(r: Row) -> dict[str, Any]:
    return {"topic": r["topic"], "channels": list(str_tuple(r["channels"]) or ()),
            "min_interval_s": float(r["min_interval_s"]), "updated_at": dt_value(r["updated_at"])}


class NotificationsRepo(StoreBase):
    @property
    def _notify_box(self) -> SecretBox:
        return self._box(NOTIFICATION_SECRETS)

    # ---- integrations ---------------------------------------------------------------------------

    async def put_integration(self, tenant_id: str, channel: str, *, config: dict[str, Any], secret: str | None,
                              keep_secret: bool, enabled: bool) -> dict[str, Any]:
        """Create or replace; `keep_secret` keeps the stored secret when `secret` is None."""
        sealed = None if secret is None else self._notify_box.seal(secret.encode(), f"{tenant_id}:{channel}")
        now = utcnow()
        async with self.db.transaction() as conn:
            if keep_secret and secret is None:
                sealed = await conn.fetchval(
                    "SELECT secret_enc FROM notification_integrations WHERE tenant_id = $1 AND channel = $2",
                    tenant_id, channel)
            await conn.execute(
                "INSERT INTO notification_integrations (tenant_id, channel, config, secret_enc, enabled, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, channel) DO UPDATE SET config = $3,"
                " secret_enc = $4, enabled = $5, updated_at = $6", tenant_id, channel, config, sealed, enabled, now)
        return await self.get_integration(tenant_id, channel)

    async def get_integration(self, tenant_id: str, channel: str) -> dict[str, Any]:
        row = await self.db.fetchrow(
            "SELECT * FROM notification_integrations WHERE tenant_id = $1 AND channel = $2", tenant_id, channel)
        if row is None:
            raise NotFoundError("integration not found")
        return integration_row(row)

    async def list_integrations(self, tenant_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT * FROM notification_integrations WHERE tenant_id = $1 ORDER BY channel", tenant_id)
        return [integration_row(r) for r in rows]

    async def delete_integration(self, tenant_id: str, channel: str) -> None:
        async with self.db.transaction() as conn:
            n = await conn.execute("DELETE FROM notification_integrations WHERE tenant_id = $1 AND channel = $2",
                                   tenant_id, channel)
        if n == 0:
            raise NotFoundError("integration not found")

    async def integration_secret(self, tenant_id: str, channel: str) -> str | None:
        blob = await self.db.fetchval(
            "SELECT secret_enc FROM notification_integrations WHERE tenant_id = $1 AND channel = $2",
            tenant_id, channel)
        return None if blob is None else self._notify_box.open(bytes(blob), f"{tenant_id}:{channel}").decode()

    # ---- subscriptions and opt-outs -------------------------------------------------------------

    async def put_subscription(self, tenant_id: str, topic: str, *, channels: list[str],
                               min_interval_s: float) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO notification_subscriptions (tenant_id, topic, channels, min_interval_s, updated_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, topic) DO UPDATE SET channels = $3,"
                " min_interval_s = $4, updated_at = $5", tenant_id, topic, channels, min_interval_s, utcnow())
        return await self.get_subscription(tenant_id, topic)

    async def get_subscription(self, tenant_id: str, topic: str) -> dict[str, Any]:
        row = await self.db.fetchrow(
            "SELECT * FROM notification_subscriptions WHERE tenant_id = $1 AND topic = $2", tenant_id, topic)
        if row is None:
            raise NotFoundError("subscription not found")
        return subscription_row(row)

    async def list_subscriptions(self, tenant_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT * FROM notification_subscriptions WHERE tenant_id = $1 ORDER BY topic", tenant_id)
        return [subscription_row(r) for r in rows]

    async def delete_subscription(self, tenant_id: str, topic: str) -> None:
        async with self.db.transaction() as conn:
            n = await conn.execute("DELETE FROM notification_subscriptions WHERE tenant_id = $1 AND topic = $2",
                                   tenant_id, topic)
        if n == 0:
            raise NotFoundError("subscription not found")

    async def add_optout(self, tenant_id: str, topic: str, recipient: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO notification_optouts (tenant_id, topic, recipient, created_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (tenant_id, topic, recipient) DO NOTHING", tenant_id, topic, recipient.lower(), utcnow())

    async def optouts(self, tenant_id: str, topic: str) -> set[str]:
        rows = await self.db.fetch(
            "SELECT recipient FROM notification_optouts WHERE tenant_id = $1 AND topic = $2", tenant_id, topic)
        return {r["recipient"] for r in rows}

    # ---- outbox ---------------------------------------------------------------------------------

    async def enqueue_notifications(self, rows: list[tuple[str, str, str, str, dict[str, Any]]]) -> int:
        """(tenant_id, topic, channel, event_id, event) rows; an event already queued for a channel is skipped."""
        now, count = utcnow(), 0
        async with self.db.transaction() as conn:
            for tenant_id, topic, channel, event_id, event in rows:
                count += await conn.execute(
                    "INSERT INTO notification_outbox (id, tenant_id, topic, channel, event_id, event, created_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, channel, event_id) DO NOTHING",
                    new_id(), tenant_id, topic, channel, event_id, event, now)
        return count

    async def pending_notification_groups(self) -> list[tuple[str, str, str]]:
        """(tenant_id, topic, channel) with unsent outbox rows."""
        rows = await self.db.fetch(
            "SELECT DISTINCT tenant_id, topic, channel FROM notification_outbox WHERE sent_at IS NULL"
            " ORDER BY tenant_id, topic, channel")
        return [(r["tenant_id"], r["topic"], r["channel"]) for r in rows]

    async def unsent_notifications(self, tenant_id: str, topic: str, channel: str,
                                   limit: int = 500) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT id, event FROM notification_outbox WHERE tenant_id = $1 AND topic = $2 AND channel = $3"
            " AND sent_at IS NULL ORDER BY id LIMIT $4", tenant_id, topic, channel, limit)
        return [{"id": r["id"], "event": json_value(r["event"])} for r in rows]

    async def last_notified(self, tenant_id: str, topic: str, channel: str) -> datetime | None:
        return dt_value(await self.db.fetchval(
            "SELECT last_sent_at FROM notification_state WHERE tenant_id = $1 AND topic = $2 AND channel = $3",
            tenant_id, topic, channel))

    async def mark_notified(self, tenant_id: str, topic: str, channel: str, outbox_ids: list[str]) -> None:
        now = utcnow()
        async with self.db.transaction() as conn:
            for start in range(0, len(outbox_ids), 100):
                chunk = outbox_ids[start:start + 100]
                marks = ", ".join(f"${i + 2}" for i in range(len(chunk)))
                await conn.execute(f"UPDATE notification_outbox SET sent_at = $1 WHERE id IN ({marks})", now, *chunk)
            await conn.execute(
                "INSERT INTO notification_state (tenant_id, topic, channel, last_sent_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (tenant_id, topic, channel) DO UPDATE SET last_sent_at = $4",
                tenant_id, topic, channel, now)
