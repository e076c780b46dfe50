"""Settings of the admin app (everything else comes from the store)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.secrets_box import derive_key


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """How the admin app authenticates, limits and reports.

    `master_key` is the server secret (the same one the proxy uses): it derives the API-key hash
    key, the JWT signing keys and the refresh-token hash key. `notify_change` is awaited after
    every write that the data plane must see (the proxy publishes on Redis `cm:changes`).
    """

    master_key: bytes
    allow_registration: bool = False
    access_ttl_s: int = 3600
    refresh_ttl_s: int = 30 * 86400
    max_body_bytes: int = 256 * 1024
    login_attempts: int = 5
    login_window_s: float = 900.0
    validate_responses: bool = False
    provider_test_timeout_s: float = 5.0
    notify_change: Callable[[], Awaitable[None]] | None = None
    runtime: Any = None                     # the proxy Runtime when both apps share a process
    version: str = "0.1.0"
    # evidence (audit, transparency log, webhooks): see admin_api/transparency.py and admin_api/webhooks.py
    transparency_key_version: int = 1       # raise to rotate the tree-head signing key
    sth_max_age_s: float = 300.0            # a tree head older than this is re-signed when asked for
    webhook_allow_networks: tuple[str, ...] = ()   # CIDRs webhooks may reach despite the SSRF rules
    webhook_timeout_s: float = 10.0
    webhook_max_attempts: int = 8
    webhook_retry_base_s: float = 5.0       # first retry delay; doubles per attempt (jittered), capped at 1 h
    dispatch_poll_s: float = 1.0            # event dispatcher poll interval (Redis pub/sub wakes it sooner)
    retention_interval_s: float = 3600.0    # how often the retention purge runs
    public_base_url: str = "http://localhost:8081"   # this API as users reach it (unsubscribe links)
    live_channel: str = "cm:live"           # Redis pub/sub channel carrying /ws events between workers
    redis: Any = None                       # redis.asyncio client (else the runtime's, if any)
    hash_key: bytes = field(init=False)

    def __post_init__(self) -> None:
        if len(self.master_key) < 16:
            raise ValueError("master_key must be at least 16 bytes")
        object.__setattr__(self, "hash_key", derive_key(self.master_key, "api-key-hash"))
