"""`casemate bootstrap` on both backends."""
from __future__ import annotations

import pytest

from admin_api.bootstrap import BootstrapError, bootstrap
from admin_api.store import Store
from pipeline.secrets_box import derive_key, hash_api_key
from tests.admin.conftest import MASTER_KEY, PASSWORD


async def test_bootstrap_creates_platform_org_owner_and_a_working_key(store: Store) -> None:
    result = await bootstrap(store, tenant="Acme", email="Owner@Acme.example", password=PASSWORD,
                             master_key=MASTER_KEY)
    tenant = await store.get_tenant(result.tenant_id)
    assert tenant["settings"] == {"platform": True}
    assert (await store.find_platform_tenant())["id"] == result.tenant_id
    owner = await store.get_user(result.tenant_id, result.user_id)
    assert (owner["email"], owner["role"]) == ("owner@acme.example", "owner")
    key = await store.find_key_by_hash(hash_api_key(derive_key(MASTER_KEY, "api-key-hash"), result.api_key))
    assert key is not None and key["id"] == result.key_id and key["source"] == "bootstrap"
    assert result.api_key in str(result) and "not shown again" in str(result)
    events = await store.list_audit_events(result.tenant_id, action="platform.bootstrap")
    assert events.total_count == 1


async def test_bootstrap_twice_is_refused_and_changes_nothing(store: Store) -> None:
    await bootstrap(store, tenant="Acme", email="a@acme.example", password=PASSWORD, master_key=MASTER_KEY)
    before = await store.load_directory()
    with pytest.raises(BootstrapError):
        await bootstrap(store, tenant="Other", email="b@other.example", password=PASSWORD, master_key=MASTER_KEY)
    assert await store.load_directory() == before


async def test_bootstrap_adopts_an_organization_seeded_from_the_config(store: Store) -> None:
    seeded = await store.seed_key("Acme", "cm_live_" + "x" * 40, b"h" * 32)
    result = await bootstrap(store, tenant="Acme", email="a@acme.example", password=PASSWORD, master_key=MASTER_KEY)
    assert result.tenant_id == seeded.tenant_id
    assert (await store.get_tenant(seeded.tenant_id))["settings"]["platform"] is True


async def test_bootstrap_refuses_a_weak_password(store: Store) -> None:
    with pytest.raises(BootstrapError):
        await bootstrap(store, tenant="Acme", email="a@acme.example", password="short", master_key=MASTER_KEY)
    assert (await store.load_directory()).tenants == ()
