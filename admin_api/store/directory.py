"""What the data plane reads: the directory snapshot, the change feed and bootstrap keys."""
from __future__ import annotations

from typing import Any

from admin_api.ids import new_id
from admin_api.store.backend import Row
from admin_api.store.codec import str_tuple, utcnow
from admin_api.store.errors import ConflictError
from admin_api.store.keys import KEY_LIMIT_FIELDS, KeysRepo, key_record
from admin_api.store.killswitch import switch_record
from admin_api.store.policies import policy_record
from pipeline.directory import (
    Change,
    DirectorySnapshot,
    KeyRecord,
    PolicyRecord,
    TenantRecord,
)
from pipeline.secrets_box import hash_api_key

_POLICIES = (
    "SELECT p.id, p.tenant_id, p.name, p.current_version, v.document FROM policies p"
    " JOIN policy_versions v ON v.policy_id = p.id AND v.version = p.current_version"
)


def tenant_record(r: Row) -> TenantRecord:
    return TenantRecord(
        id=r["id"], name=r["name"], status=r["status"], rpm=r["rpm"], tpm=r["tpm"],
        allowed_models=str_tuple(r["allowed_models"]), allowed_providers=str_tuple(r["allowed_providers"]),
        policy_id=r["policy_id"],
    )


def _placeholders(n: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + n))


class DirectoryRepo(KeysRepo):
    async def load_directory(self) -> DirectorySnapshot:
        """Every tenant, key (revoked ones too, so the data plane can say why it refuses), policy and switch.

        `seq` is read first: changes after it may already be reflected, and re-applying them is harmless.
        """
        seq = int(await self.db.fetchval("SELECT coalesce(max(seq), 0) FROM changes") or 0)
        tenants = await self.db.fetch("SELECT * FROM tenants ORDER BY id")
        keys = await self.db.fetch("SELECT * FROM api_keys ORDER BY id")
        policies = await self.db.fetch(_POLICIES + " ORDER BY p.id")
        switches = await self.db.fetch("SELECT * FROM kill_switches ORDER BY id")
        return DirectorySnapshot(
            tenants=tuple(tenant_record(r) for r in tenants),
            keys=tuple(key_record(r) for r in keys),
            policies=tuple(policy_record(r) for r in policies),
            kill_switches=tuple(switch_record(r) for r in switches),
            seq=seq,
        )

    async def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        """Changes with a sequence number above `seq`, in order (at most `limit`)."""
        rows = await self.db.fetch(
            "SELECT seq, tenant_id, kind, entity_id FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit
        )
        return [Change(seq=int(r["seq"]), tenant_id=r["tenant_id"], kind=r["kind"], entity_id=r["entity_id"])
                for r in rows]

    async def prune_changes(self, keep_last: int = 100_000) -> int:
        """Drop all but the newest `keep_last` change rows; returns rows removed."""
        async with self.db.transaction() as conn:
            return await conn.execute(
                "DELETE FROM changes WHERE seq <= (SELECT coalesce(max(seq), 0) FROM changes) - $1", keep_last
            )

    async def get_key_records(self, ids: list[str]) -> list[KeyRecord]:
        """Current records for these key ids; ids missing from the answer were deleted."""
        if not ids:
            return []
        rows = await self.db.fetch(f"SELECT * FROM api_keys WHERE id IN ({_placeholders(len(ids))})", *ids)
        return [key_record(r) for r in rows]

    async def get_tenant_records(self, ids: list[str]) -> list[TenantRecord]:
        if not ids:
            return []
        rows = await self.db.fetch(f"SELECT * FROM tenants WHERE id IN ({_placeholders(len(ids))})", *ids)
        return [tenant_record(r) for r in rows]

    async def get_policy_records(self, ids: list[str]) -> list[PolicyRecord]:
        if not ids:
            return []
        rows = await self.db.fetch(_POLICIES + f" WHERE p.id IN ({_placeholders(len(ids))})", *ids)
        return [policy_record(r) for r in rows]

    async def seed_key(self, tenant_name: str, raw_key: str, hash_key: bytes, **limits: Any) -> KeyRecord:
        """Make sure `raw_key` exists for tenant `tenant_name` (both created if missing); idempotent.

        `limits` may hold `name` and the per-key limit fields (rpm, tpm, allowed_models, ...). An existing key
        keeps its stored settings; a revoked key stays revoked.
        """
        name = str(limits.pop("name", "bootstrap"))
        unknown = set(limits) - set(KEY_LIMIT_FIELDS)
        if unknown:
            raise TypeError(f"unknown key fields: {sorted(unknown)}")
        key_hash = hash_api_key(hash_key, raw_key)
        for attempt in range(3):
            try:
                return await self._seed_once(tenant_name, raw_key, key_hash, name, limits)
            except ConflictError:
                if attempt == 2:      # another process kept winning the race; its rows are what we want
                    raise
        raise AssertionError("unreachable")

    async def _seed_once(
        self, tenant_name: str, raw_key: str, key_hash: str, name: str, limits: dict[str, Any]
    ) -> KeyRecord:
        async with self.db.transaction() as conn:
            existing = await conn.fetchrow("SELECT * FROM api_keys WHERE key_hash = $1", key_hash)
            if existing is not None:
                return key_record(existing)
            tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", tenant_name)
            if tenant_id is None:
                tenant_id = new_id()
                now = utcnow()
                await conn.execute(
                    "INSERT INTO tenants (id, name, status, settings, created_at, updated_at)"
                    " VALUES ($1, $2, 'active', $3, $4, $4)",
                    tenant_id, tenant_name, {}, now,
                )
                await self._change(conn, tenant_id, "tenant", tenant_id)
            kid = new_id()
            fields = dict(limits, source="config")
            await self._insert_key(conn, kid, tenant_id, key_hash, raw_key[:12], raw_key[-4:], name, fields)
            row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", kid)
        assert row is not None
        return key_record(row)
