"""Upstream providers; credentials sealed with AES-GCM and never part of a returned row."""
from __future__ import annotations

from typing import Any

import orjson

from admin_api.ids import new_id
from admin_api.store.backend import Row
from admin_api.store.base import Page, StoreBase
from admin_api.store.codec import dt_value, json_value, utcnow
from admin_api.store.crypto import MFA_SECRETS, PROVIDER_CREDENTIALS, SecretBox
from admin_api.store.errors import NotFoundError

PROVIDER_FIELDS = ("name", "kind", "base_url", "models", "settings", "status")


def provider_row(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "tenant_id": r["tenant_id"],
        "name": r["name"],
        "kind": r["kind"],
        "base_url": r["base_url"],
        "models": json_value(r["models"]) or [],
        "settings": json_value(r["settings"]) or {},
        "status": r["status"],
        "has_credentials": r["credentials_enc"] is not None,
        "created_at": dt_value(r["created_at"]),
        "updated_at": dt_value(r["updated_at"]),
    }


def _aad(tenant_id: str, provider_id: str) -> str:
    return f"provider:{tenant_id}:{provider_id}"


class ProvidersRepo(StoreBase):
    def _seal(self, tenant_id: str, pid: str, credentials: dict[str, Any] | None) -> bytes | None:
        if credentials is None:
            return None
        return self._credentials_box.seal(orjson.dumps(credentials), _aad(tenant_id, pid))

    async def create_provider(
        self, tenant_id: str, name: str, kind: str, *, credentials: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        unknown = set(fields) - set(PROVIDER_FIELDS)
        if unknown:
            raise TypeError(f"unknown provider fields: {sorted(unknown)}")
        pid = new_id()
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO providers (id, tenant_id, name, kind, base_url, models, settings, credentials_enc,"
                " status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                pid, tenant_id, name, kind, fields.get("base_url", ""), fields.get("models") or [],
                fields.get("settings") or {}, self._seal(tenant_id, pid, credentials),
                fields.get("status", "active"), now,
            )
            await self._change(conn, tenant_id, "provider", pid)
        return await self.get_provider(tenant_id, pid)

    async def get_provider(self, tenant_id: str, provider_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow(
            "SELECT * FROM providers WHERE tenant_id = $1 AND id = $2", tenant_id, provider_id
        )
        if row is None:
            raise NotFoundError("provider not found")
        return provider_row(row)

    async def list_providers(
        self, tenant_id: str, *, limit: int = 50, after: str | None = None
    ) -> Page[dict[str, Any]]:
        rows, more, total = await self._page("providers", ["tenant_id = $1"], [tenant_id], limit=limit, after=after)
        items = [provider_row(r) for r in rows]
        return Page(items, more, total, items[-1]["id"] if more else None)

    async def update_provider(
        self, tenant_id: str, provider_id: str, *, credentials: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Change fields; new `credentials` replace the sealed ones (None keeps them)."""
        unknown = set(fields) - set(PROVIDER_FIELDS)
        if unknown:
            raise TypeError(f"unknown provider fields: {sorted(unknown)}")
        values = dict(fields)
        if credentials is not None:
            values["credentials_enc"] = self._seal(tenant_id, provider_id, credentials)
        names = sorted(values)
        sets = "".join(f"{n} = ${i + 3}, " for i, n in enumerate(names))
        async with self.db.transaction() as conn:
            count = await conn.execute(
                f"UPDATE providers SET {sets}updated_at = ${len(names) + 3} WHERE tenant_id = $1 AND id = $2",
                tenant_id, provider_id, *[values[n] for n in names], utcnow(),
            )
            if count == 0:
                raise NotFoundError("provider not found")
            await self._change(conn, tenant_id, "provider", provider_id)
        return await self.get_provider(tenant_id, provider_id)

    async def delete_provider(self, tenant_id: str, provider_id: str) -> None:
        async with self.db.transaction() as conn:
            count = await conn.execute(
                "DELETE FROM providers WHERE tenant_id = $1 AND id = $2", tenant_id, provider_id
            )
            if count == 0:
                raise NotFoundError("provider not found")
            await self._change(conn, tenant_id, "provider", provider_id)

    async def get_provider_credentials(self, tenant_id: str, provider_id: str) -> dict[str, Any] | None:
        """Decrypted credentials, for connectivity tests and the data plane's provider clients only."""
        row = await self.db.fetchrow(
            "SELECT credentials_enc FROM providers WHERE tenant_id = $1 AND id = $2", tenant_id, provider_id
        )
        if row is None:
            raise NotFoundError("provider not found")
        blob = row["credentials_enc"]
        if blob is None:
            return None
        return orjson.loads(self._credentials_box.open(bytes(blob), _aad(tenant_id, provider_id)))

    async def rotate_encryption(self, old_master: bytes) -> int:
        """Re-seal every secret sealed at rest (provider credentials, MFA secrets, webhook secrets,
        notification passwords) from `old_master` to the current master key."""
        from admin_api.store.notifications import NOTIFICATION_SECRETS
        from admin_api.store.webhooks import WEBHOOK_SECRETS
        from admin_api.store.webhooks import _aad as webhook_aad

        old_creds = SecretBox(old_master, PROVIDER_CREDENTIALS)
        old_mfa = SecretBox(old_master, MFA_SECRETS)
        old_hooks = SecretBox(old_master, WEBHOOK_SECRETS)
        old_notify = SecretBox(old_master, NOTIFICATION_SECRETS)
        count = 0
        async with self.db.transaction() as conn:
            for r in await conn.fetch("SELECT id, tenant_id, credentials_enc FROM providers"
                                      " WHERE credentials_enc IS NOT NULL"):
                aad = _aad(r["tenant_id"], r["id"])
                plain = old_creds.open(bytes(r["credentials_enc"]), aad)
                await conn.execute("UPDATE providers SET credentials_enc = $2 WHERE id = $1",
                                   r["id"], self._credentials_box.seal(plain, aad))
                await self._change(conn, r["tenant_id"], "provider", r["id"])
                count += 1
            for r in await conn.fetch("SELECT id, tenant_id, mfa_secret_enc FROM users"
                                      " WHERE mfa_secret_enc IS NOT NULL"):
                aad = f"{r['tenant_id']}:{r['id']}"
                plain = old_mfa.open(bytes(r["mfa_secret_enc"]), aad)
                await conn.execute("UPDATE users SET mfa_secret_enc = $2 WHERE id = $1",
                                   r["id"], self._mfa_box.seal(plain, aad))
                count += 1
            hooks = self._box(WEBHOOK_SECRETS)
            for r in await conn.fetch("SELECT id, tenant_id, secret_enc FROM webhooks WHERE secret_enc IS NOT NULL"):
                aad = webhook_aad(r["tenant_id"], r["id"])
                plain = old_hooks.open(bytes(r["secret_enc"]), aad)
                await conn.execute("UPDATE webhooks SET secret_enc = $2 WHERE id = $1", r["id"], hooks.seal(plain, aad))
                count += 1
            notify = self._box(NOTIFICATION_SECRETS)
            for r in await conn.fetch("SELECT tenant_id, channel, secret_enc FROM notification_integrations"
                                      " WHERE secret_enc IS NOT NULL"):
                aad = f"{r['tenant_id']}:{r['channel']}"
                plain = old_notify.open(bytes(r["secret_enc"]), aad)
                await conn.execute("UPDATE notification_integrations SET secret_enc = $3"
                                   " WHERE tenant_id = $1 AND channel = $2", r["tenant_id"], r["channel"],
                                   notify.seal(plain, aad))
                count += 1
        return count
