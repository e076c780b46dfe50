"""`casemate bootstrap`: the first (platform) organization, its owner and a first API key."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from admin_api.ids import new_id
from admin_api.passwords import hash_password, password_problem
from admin_api.store import ConflictError, Store, open_store
from pipeline.secrets_box import derive_key, generate_api_key, hash_api_key


class BootstrapError(Exception):
    """Bootstrap refused (already done, weak password, ...)."""


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    tenant_id: str
    user_id: str
    key_id: str
    api_key: str          # shown once

    def __str__(self) -> str:
        return (
            f"organization  {self.tenant_id}\n"
            f"owner user    {self.user_id}\n"
            f"API key id    {self.key_id}\n"
            f"API key       {self.api_key}\n"
            "Store the API key now: it is not shown again."
        )


async def bootstrap(
    store: Store, *, tenant: str, email: str, password: str, master_key: bytes, key_name: str = "bootstrap",
) -> BootstrapResult:
    """Create the platform organization (its owners and admins get `platform:admin`), an owner and a key.

    An organization of that name made earlier (e.g. by a bootstrap key in the config file) becomes
    the platform organization. Refuses when a platform organization exists already, so running it
    twice changes nothing.
    """
    problem = password_problem(password)
    if problem:
        raise BootstrapError(f"password {problem}")
    existing = await store.find_platform_tenant()
    if existing is not None:
        raise BootstrapError(f"already bootstrapped: the platform organization is {existing['name']!r}")
    org = await store.find_tenant_by_name(tenant)
    if org is None:
        try:
            org = await store.create_tenant(tenant, settings={"platform": True})
        except ConflictError:
            raise BootstrapError(f"organization {tenant!r} was created concurrently; run bootstrap again") from None
    else:
        org = await store.update_tenant(org["id"], settings={**org["settings"], "platform": True})
    pw_hash = await asyncio.to_thread(hash_password, password)
    try:
        user = await store.create_user(org["id"], email, pw_hash, "owner", name="Owner")
    except ConflictError:
        raise BootstrapError(f"{email} already has an account in {tenant!r}") from None
    raw = generate_api_key()
    key = await store.create_key(
        org["id"], key_hash=hash_api_key(derive_key(master_key, "api-key-hash"), raw), prefix=raw[:12],
        last4=raw[-4:], name=key_name, role="member", source="bootstrap", created_by=f"user:{user['id']}",
    )
    await store.write_audit_events([{
        "id": new_id(), "tenant_id": org["id"], "actor": "cli:bootstrap", "action": "platform.bootstrap",
        "resource_type": "tenant", "resource_id": org["id"], "outcome": "success",
        "details": {"owner": user["id"], "key": key["id"]},
    }])
    return BootstrapResult(org["id"], user["id"], key["id"], raw)


async def run_bootstrap(settings: Any, *, tenant: str, email: str, password: str) -> BootstrapResult:
    """CLI glue: open the configured store with the server secret and bootstrap it."""
    from proxy.runtime import (
        load_master_secret,  # the CLI owns secret loading; imported only here
    )

    master = load_master_secret(settings)
    store = await open_store(settings.effective_database_url, master_key=master)
    try:
        return await bootstrap(store, tenant=tenant, email=email, password=password, master_key=master)
    finally:
        await store.close()
