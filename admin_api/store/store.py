"""The `Store`: one async repository over SQLite or PostgreSQL."""
from __future__ import annotations

from admin_api.store.backend import Backend
from admin_api.store.checks import ChecksRepo
from admin_api.store.directory import DirectoryRepo
from admin_api.store.events import EventsRepo
from admin_api.store.evidence import EvidenceRepo
from admin_api.store.killswitch import KillSwitchRepo
from admin_api.store.migrate import apply_migrations
from admin_api.store.notifications import NotificationsRepo
from admin_api.store.policies import PoliciesRepo
from admin_api.store.providers import ProvidersRepo
from admin_api.store.scim import ScimRepo
from admin_api.store.sessions import SessionsRepo
from admin_api.store.tenants import TenantsRepo
from admin_api.store.trust import TrustRepo
from admin_api.store.webhooks import WebhooksRepo


class Store(DirectoryRepo, TenantsRepo, PoliciesRepo, ProvidersRepo, KillSwitchRepo, EventsRepo, SessionsRepo,
            EvidenceRepo, ChecksRepo, WebhooksRepo, ScimRepo, NotificationsRepo,
            TrustRepo):
    """Control-plane data: every admin read and write, plus the data plane's directory feed.

    Every method that touches tenant data takes the tenant id and filters by it; an id that
    belongs to another tenant behaves exactly like an unknown id (NotFoundError).
    """

    def __init__(self, db: Backend, master_key: bytes | None = None, *, schema: str | None = None) -> None:
        super().__init__(db, master_key)
        self._schema = schema

    async def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied."""
        return await apply_migrations(self.db, self._schema)

    async def ping(self) -> None:
        """Raises StoreUnavailable when the database does not answer."""
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()


async def open_store(url: str, *, master_key: bytes | None = None, migrate: bool = True) -> Store:
    """Open `sqlite:///path/to/file.db` or `postgresql://...` (optionally `?schema=name`).

    `master_key` (the server secret) is needed only to seal or read provider credentials and
    MFA secrets. Pending migrations are applied unless `migrate` is False.
    """
    if url.startswith("sqlite://"):
        from admin_api.store.sqlite import SqliteBackend

        path = url[len("sqlite://"):]
        while path.startswith("//"):
            path = path[1:]
        if not path or path.endswith(":memory:"):
            raise ValueError("SQLite needs a file path (sqlite:///path/to/casemate.db)")
        store = Store(await SqliteBackend.open(path), master_key)
    elif url.startswith(("postgresql://", "postgres://")):
        from admin_api.store.postgres import PostgresBackend

        backend = await PostgresBackend.open(url)
        store = Store(backend, master_key, schema=backend.schema)
    else:
        raise ValueError("database URL must start with sqlite:/// or postgresql://")
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store
