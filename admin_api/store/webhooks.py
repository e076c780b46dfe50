"""Webhook endpoints and their deliveries.

Signing secrets are sealed with AES-256-GCM (purpose "webhook-secrets", bound to tenant and
webhook id) and only `webhook_secret()` opens them; listed rows never carry them.
A delivery is one (webhook, event) pair, unique, so an event enqueued twice is delivered once.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Row
from admin_api.store.base import Page, StoreBase
from admin_api.store.codec import dt_value, json_value, str_tuple, utcnow
from admin_api.store.crypto import SecretBox
from admin_api.store.errors import NotFoundError

WEBHOOK_SECRETS = "webhook-secrets"
WEBHOOK_FIELDS = ("url", "description", "event_types", "status")


def webhook_row(r: Row) -> dict[str, Any]:
    return {"id": r["id"], "tenant_id": r["tenant_id"], "url": r["url"], "description": r["description"],
            "event_types": list(str_tuple(r["event_types"]) or ()), "status": r["status"],
            "created_by": r["created_by"], "created_at": dt_value(r["created_at"]),
            "updated_at": dt_value(r["updated_at"])}


def delivery_row(r: Row) -> dict[str, Any]:
    return {"id": r["id"], "webhook_id": r["webhook_id"], "event_id": r["event_id"], "event_type": r["event_type"],
            "status": r["status"], "attempts": r["attempts"], "next_attempt_at": dt_value(r["next_attempt_at"]),
            "response_code": r["last_status_code"], "error": r["last_error"], "latency_ms": r["latency_ms"],
            "created_at": dt_value(r["created_at"]), "updated_at": dt_value(r["updated_at"])}


def _aad(tenant_id: str, webhook_id: str) -> str:
    return f"webhook:{tenant_id}:{webhook_id}"


class WebhooksRepo(StoreBase):
    @property
    def _webhook_box(self) -> SecretBox:
        return self._box(WEBHOOK_SECRETS)

    async def create_webhook(self, tenant_id: str, *, url: str, secret: str, description: str = "",
                             event_types: list[str] | None = None, created_by: str | None = None) -> dict[str, Any]:
        wid, now = new_id(), utcnow()
        sealed = self._webhook_box.seal(secret.encode(), _aad(tenant_id, wid))
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO webhooks (id, tenant_id, url, description, event_types, secret_enc, status, created_by,"
                " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $8)",
                wid, tenant_id, url, description, list(event_types or []), sealed, created_by, now)
        return await self.get_webhook(tenant_id, wid)

    async def get_webhook(self, tenant_id: str, webhook_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow("SELECT * FROM webhooks WHERE tenant_id = $1 AND id = $2", tenant_id, webhook_id)
        if row is None:
            raise NotFoundError("webhook not found")
        return webhook_row(row)

    async def list_webhooks(self, tenant_id: str, *, limit: int = 50, after: str | None = None) -> Page[dict[str, Any]]:
        rows, more, total = await self._page("webhooks", ["tenant_id = $1"], [tenant_id], limit=limit, after=after)
        items = [webhook_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)

    async def active_webhooks(self, tenant_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch("SELECT * FROM webhooks WHERE tenant_id = $1 AND status = 'active' ORDER BY id",
                                   tenant_id)
        return [webhook_row(r) for r in rows]

    async def update_webhook(self, tenant_id: str, webhook_id: str, *, secret: str | None = None,
                             **fields: Any) -> dict[str, Any]:
        sets: list[str] = []
        args: list[Any] = [tenant_id, webhook_id]
        for name, value in fields.items():
            if name not in WEBHOOK_FIELDS:
                raise ValueError(f"not an updatable webhook field: {name}")
            args.append(list(value) if name == "event_types" else value)
            sets.append(f"{name} = ${len(args)}")
        if secret is not None:
            args.append(self._webhook_box.seal(secret.encode(), _aad(tenant_id, webhook_id)))
            sets.append(f"secret_enc = ${len(args)}")
        args.append(utcnow())
        sets.append(f"updated_at = ${len(args)}")
        async with self.db.transaction() as conn:
            n = await conn.execute(f"UPDATE webhooks SET {', '.join(sets)} WHERE tenant_id = $1 AND id = $2", *args)
        if n == 0:
            raise NotFoundError("webhook not found")
        return await self.get_webhook(tenant_id, webhook_id)

    async def delete_webhook(self, tenant_id: str, webhook_id: str) -> None:
        async with self.db.transaction() as conn:
            n = await conn.execute("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2", tenant_id, webhook_id)
        if n == 0:
            raise NotFoundError("webhook not found")

    async def webhook_secret(self, tenant_id: str, webhook_id: str) -> str:
        blob = await self.db.fetchval("SELECT secret_enc FROM webhooks WHERE tenant_id = $1 AND id = $2",
                                      tenant_id, webhook_id)
        if blob is None:
            raise NotFoundError("webhook not found")
        return self._webhook_box.open(bytes(blob), _aad(tenant_id, webhook_id)).decode()

    # ---- deliveries -----------------------------------------------------------------------------

    async def enqueue_deliveries(self, rows: list[tuple[str, str, str, str, dict[str, Any]]]) -> int:
        """(tenant_id, webhook_id, event_id, event_type, payload) -> pending deliveries due now; duplicates skipped."""
        if not rows:
            return 0
        now = utcnow()
        async with self.db.transaction() as conn:
            count = 0
            for tenant_id, webhook_id, event_id, event_type, payload in rows:
                count += await conn.execute(
                    "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event_type, payload, status,"
                    " attempts, next_attempt_at, created_at, updated_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)"
                    " ON CONFLICT (webhook_id, event_id) DO NOTHING",
                    new_id(), tenant_id, webhook_id, event_id, event_type, payload, now)
        return count

    async def claim_due_deliveries(self, *, now: datetime, lease_until: datetime,
                                   limit: int = 50) -> list[dict[str, Any]]:
        """Pending deliveries due by `now`, leased until `lease_until` so no other worker sends them meanwhile."""
        async with self.db.transaction() as conn:
            lock = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgres" else ""
            rows = await conn.fetch(
                "SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1"
                f" ORDER BY next_attempt_at, id LIMIT $2{lock}", now, limit)
            for r in rows:
                await conn.execute("UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE id = $2",
                                   lease_until, r["id"])
        return [{**delivery_row(r), "tenant_id": r["tenant_id"], "payload": json_value(r["payload"])} for r in rows]

    async def count_pending_deliveries(self) -> int:
        """Deliveries still to be attempted (due now or later, leased ones included), over every organization."""
        return int(await self.db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))

    async def record_attempt(self, delivery_id: str, *, status: str, status_code: int | None, error: str | None,
                             latency_ms: float, next_attempt_at: datetime | None) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, last_status_code = $3,"
                " last_error = $4, latency_ms = $5, next_attempt_at = $6, updated_at = $7 WHERE id = $1",
                delivery_id, status, status_code, error, latency_ms, next_attempt_at, utcnow())

    async def list_deliveries(self, tenant_id: str, webhook_id: str, *, status: str | None = None, limit: int = 50,
                              after: str | None = None) -> Page[dict[str, Any]]:
        await self.get_webhook(tenant_id, webhook_id)
        where, args = ["tenant_id = $1", "webhook_id = $2"], [tenant_id, webhook_id]
        if status is not None:
            args.append(status)
            where.append(f"status = ${len(args)}")
        rows, more, total = await self._page("webhook_deliveries", where, args, limit=limit, after=after)
        items = [delivery_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)

    async def get_delivery(self, tenant_id: str, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow(
            "SELECT * FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3",
            tenant_id, webhook_id, delivery_id)
        if row is None:
            raise NotFoundError("delivery not found")
        return {**delivery_row(row), "tenant_id": row["tenant_id"], "payload": json_value(row["payload"])}

    async def redeliver(self, tenant_id: str, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        """Put a delivery (dead or done) back in the queue, due now, with a fresh attempt budget."""
        async with self.db.transaction() as conn:
            n = await conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $4,"
                " updated_at = $4 WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3",
                tenant_id, webhook_id, delivery_id, utcnow())
        if n == 0:
            raise NotFoundError("delivery not found")
        return await self.get_delivery(tenant_id, webhook_id, delivery_id)
