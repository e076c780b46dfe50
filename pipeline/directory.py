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
