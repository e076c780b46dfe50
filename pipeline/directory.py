"""The data plane's view of control-plane data.

The store (admin_api) produces these records; the data plane keeps them in
memory (a `Directory`) so the hot path resolves keys, tenants, policies and
kill switches with dict lookups, never a database await.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: str
    name: str
    status: str = "active"                       # active | suspended
    rpm: int | None = None                       # requests per minute, None = platform default
    tpm: int | None = None                       # tokens per minute
    allowed_models: tuple[str, ...] | None = None
    allowed_providers: tuple[str, ...] | None = None
    policy_id: str | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    tenant_id: str
    key_hash: str
    name: str
    prefix: str
    status: str = "active"                       # active | revoked
    expires_at: float | None = None              # unix seconds, None = permanent
    role: str = "member"
    scopes: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    allowed_models: tuple[str, ...] | None = None
    allowed_providers: tuple[str, ...] | None = None
    policy_id: str | None = None
    budget_usd: float | None = None


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    id: str
    tenant_id: str
    name: str
    version: int
    document: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KillSwitchRecord:
    scope: str                                   # global | tenant | key | provider | model
    target: str                                  # "*" for global
    reason: str = ""
    tenant_id: str | None = None


@dataclass(frozen=True, slots=True)
class DirectorySnapshot:
    tenants: tuple[TenantRecord, ...] = ()
    keys: tuple[KeyRecord, ...] = ()
    policies: tuple[PolicyRecord, ...] = ()
    kill_switches: tuple[KillSwitchRecord, ...] = ()
    seq: int = 0                                 # last change sequence included


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    tenant_id: str | None
    kind: str                                    # tenant | key | policy | kill_switch | provider
    entity_id: str


class Directory:
    """In-memory, hot-path view of the directory: dict lookups only.

    Built from a snapshot at start-up and patched from the change feed. Effective
    policies are compiled once per (tenant, key) on change, never per request.
    """

    def __init__(self, platform_policy: dict[str, Any] | None = None) -> None:
        from pipeline.policy import compile_policy

        self._compile = compile_policy
        self.platform_policy = platform_policy or {}
        self.tenants: dict[str, TenantRecord] = {}
        self.keys_by_hash: dict[str, KeyRecord] = {}
        self.keys_by_id: dict[str, KeyRecord] = {}
        self.policies: dict[str, PolicyRecord] = {}
        self.kill_switches: tuple[KillSwitchRecord, ...] = ()
        self.killed_global: str | None = None
        self.killed: dict[tuple[str, str], str] = {}   # (scope, target) -> reason
        self.seq = 0
        self._effective: dict[tuple[str | None, str | None], Any] = {}
        self.default_policy = compile_policy(self.platform_policy)
        self.generation = 0                            # bumped on every change; hot-path caches key on it

    def load(self, snap: DirectorySnapshot) -> None:
        self.generation += 1
        self.tenants = {t.id: t for t in snap.tenants}
        self.keys_by_id = {k.id: k for k in snap.keys}
        self.keys_by_hash = {k.key_hash: k for k in snap.keys}
        self.policies = {p.id: p for p in snap.policies}
        self.set_kill_switches(snap.kill_switches)
        self.seq = snap.seq
        self._effective.clear()

    def upsert_tenant(self, t: TenantRecord) -> None:
        self.generation += 1
        self.tenants[t.id] = t
        self._effective.clear()

    def upsert_key(self, k: KeyRecord) -> None:
        self.generation += 1
        old = self.keys_by_id.get(k.id)
        if old is not None and old.key_hash != k.key_hash:
            self.keys_by_hash.pop(old.key_hash, None)
        self.keys_by_id[k.id] = k
        self.keys_by_hash[k.key_hash] = k
        self._effective = {ck: v for ck, v in self._effective.items() if ck[1] != k.id}

    def remove_key(self, key_id: str) -> None:
        self.generation += 1
        old = self.keys_by_id.pop(key_id, None)
        if old is not None:
            self.keys_by_hash.pop(old.key_hash, None)

    def upsert_policy(self, p: PolicyRecord) -> None:
        self.generation += 1
        self.policies[p.id] = p
        self._effective.clear()

    def remove_policy(self, policy_id: str) -> None:
        self.generation += 1
        self.policies.pop(policy_id, None)
        self._effective.clear()

    def set_kill_switches(self, switches: tuple[KillSwitchRecord, ...]) -> None:
        self.generation += 1
        self.kill_switches = tuple(switches)
        self.killed_global = None
        killed: dict[tuple[str, str], str] = {}
        for s in switches:
            if s.scope == "global":
                self.killed_global = s.reason or "switched off"
            else:
                killed[(s.scope, s.target)] = s.reason or "switched off"
        self.killed = killed

    def effective_policy(self, tenant_id: str | None, key: KeyRecord | None) -> Any:
        """The compiled policy for a tenant/key pair (memoised until a change)."""
        ck = (tenant_id, key.id if key is not None else None)
        pol = self._effective.get(ck)
        if pol is not None:
            return pol
        layers: list[dict[str, Any]] = [self.platform_policy]
        names = ["platform-default"]
        tenant = self.tenants.get(tenant_id) if tenant_id else None
        for pid in ((tenant.policy_id if tenant else None), (key.policy_id if key else None)):
            if pid and pid in self.policies:
                rec = self.policies[pid]
                if rec.tenant_id == tenant_id:
                    layers.append(rec.document)
                    names.append(rec.name)
        try:
            pol = self._compile(*layers, name=names[-1])
        except ValueError:
            # an invalid stored document never widens access: fall back to the platform policy
            pol = self.default_policy
        self._effective[ck] = pol
        return pol
