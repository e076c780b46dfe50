"""Repository behaviour on both backends (the `store` fixture runs each test on SQLite and PostgreSQL)."""
from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from admin_api.ids import new_id
from admin_api.store import ConflictError, NotFoundError, Store, StoreError
from admin_api.store.backend import Conn
from admin_api.store.codec import utcnow
from pipeline.secrets_box import hash_api_key
from tests.admin.conftest import PG_URL

HASH_KEY = b"h" * 32
RAW = "cm_live_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"


async def _key(store: Store, tenant_id: str, name: str = "k", **fields) -> dict:
    raw = f"cm_live_{new_id().replace('-', '')}"
    return await store.create_key(
        tenant_id, key_hash=hash_api_key(HASH_KEY, raw), prefix=raw[:12], last4=raw[-4:], name=name, **fields
    )


# ---- migrations -------------------------------------------------------------------------------


async def test_migrate_twice_applies_nothing_the_second_time(store: Store) -> None:
    assert await store.migrate() == []
    versions = await store.db.fetch("SELECT version FROM schema_migrations ORDER BY version")
    from admin_api.store.migrate import load_migrations

    assert [r["version"] for r in versions] == [m.version for m in load_migrations(store.dialect)]


# ---- tenants, users, memberships ----------------------------------------------------------------


async def test_tenant_create_update_and_duplicate_name(store: Store) -> None:
    t = await store.create_tenant("acme", rpm=10, allowed_models=["gpt-4o"])
    assert t["rpm"] == 10 and t["allowed_models"] == ["gpt-4o"]
    t2 = await store.update_tenant(t["id"], allowed_models=None, tpm=500)
    assert t2["allowed_models"] is None and t2["tpm"] == 500 and t2["rpm"] == 10
    with pytest.raises(ConflictError):
        await store.create_tenant("acme")
    assert (await store.find_tenant_by_name("acme"))["id"] == t["id"]


async def test_delete_tenant_removes_its_keys_and_reports_them_in_the_feed(store: Store) -> None:
    t = await store.create_tenant("gone")
    k = await _key(store, t["id"])
    seq = (await store.load_directory()).seq
    await store.delete_tenant(t["id"])
    kinds = {(c.kind, c.entity_id) for c in await store.changes_since(seq)}
    assert ("key", k["id"]) in kinds and ("tenant", t["id"]) in kinds
    assert await store.get_key_records([k["id"]]) == []
    with pytest.raises(NotFoundError):
        await store.get_tenant(t["id"])


async def test_user_email_is_unique_per_tenant_only(store: Store) -> None:
    a = await store.create_tenant("a")
    b = await store.create_tenant("b")
    await store.create_user(a["id"], "Ann@Example.com", "hash", "owner")
    with pytest.raises(ConflictError):
        await store.create_user(a["id"], "ann@example.com", "hash", "admin")
    other = await store.create_user(b["id"], "ann@example.com", "hash", "member")
    assert other["email"] == "ann@example.com"
    candidates = await store.find_login_candidates("ANN@example.com")
    assert {c["tenant_id"] for c in candidates} == {a["id"], b["id"]}
    assert all("password_hash" in c for c in candidates)


async def test_user_rows_never_carry_secrets(store: Store) -> None:
    t = await store.create_tenant("a")
    u = await store.create_user(t["id"], "x@example.com", "scrypt$secret", "member")
    await store.set_user_mfa_secret(t["id"], u["id"], b"JBSWY3DPEHPK3PXP")
    got = await store.get_user(t["id"], u["id"])
    assert "password_hash" not in got and "mfa_secret_enc" not in got and got["mfa_enabled"] is True
    (cand,) = await store.find_login_candidates("x@example.com")
    assert store.open_mfa_secret(t["id"], u["id"], cand["mfa_secret_enc"]) == b"JBSWY3DPEHPK3PXP"
    raw = await store.db.fetchval("SELECT mfa_secret_enc FROM users WHERE id = $1", u["id"])
    assert b"JBSWY3DPEHPK3PXP" not in bytes(raw)


async def test_users_are_scoped_by_tenant(store: Store) -> None:
    a = await store.create_tenant("a")
    b = await store.create_tenant("b")
    u = await store.create_user(a["id"], "u@example.com", "h", "member")
    with pytest.raises(NotFoundError):
        await store.get_user(b["id"], u["id"])
    with pytest.raises(NotFoundError):
        await store.update_user(b["id"], u["id"], name="evil")
    with pytest.raises(NotFoundError):
        await store.delete_user(b["id"], u["id"])
    assert (await store.get_user(a["id"], u["id"]))["name"] == ""


async def test_memberships_give_a_role_in_another_tenant(store: Store) -> None:
    a = await store.create_tenant("a")
    b = await store.create_tenant("b")
    u = await store.create_user(a["id"], "u@example.com", "h", "owner")
    await store.add_member(b["id"], u["id"], "viewer")
    with pytest.raises(ConflictError):
        await store.add_member(b["id"], u["id"], "admin")
    assert (await store.get_user(b["id"], u["id"]))["role"] == "viewer"
    roles = {t["name"]: t["role"] for t in await store.list_tenants_for_user(u["id"])}
    assert roles == {"a": "owner", "b": "viewer"}
    await store.update_user(b["id"], u["id"], role="admin")
    assert (await store.get_user(b["id"], u["id"]))["role"] == "admin"
    assert (await store.get_user(a["id"], u["id"]))["role"] == "owner"
    with pytest.raises(StoreError):
        await store.update_user(b["id"], u["id"], name="renamed by a guest tenant")
    assert await store.count_members_with_role(b["id"], "admin") == 1
    await store.remove_member(b["id"], u["id"])
    with pytest.raises(NotFoundError):
        await store.get_membership(b["id"], u["id"])


async def test_list_users_pages_newest_first(store: Store) -> None:
    t = await store.create_tenant("a")
    ids = [(await store.create_user(t["id"], f"u{i}@example.com", "h", "member"))["id"] for i in range(5)]
    first = await store.list_users(t["id"], limit=2)
    assert [u["id"] for u in first.items] == ids[::-1][:2] and first.has_more and first.total_count == 5
    rest = await store.list_users(t["id"], limit=10, after=first.next_after)
    assert [u["id"] for u in rest.items] == ids[::-1][2:] and not rest.has_more


async def test_touch_login_and_delete_user(store: Store) -> None:
    t = await store.create_tenant("a")
    u = await store.create_user(t["id"], "u@example.com", "h", "member")
    await store.touch_login(t["id"], u["id"])
    assert (await store.get_user(t["id"], u["id"]))["last_login_at"] is not None
    await store.delete_user(t["id"], u["id"])
    with pytest.raises(NotFoundError):
        await store.get_user(t["id"], u["id"])


# ---- API keys ---------------------------------------------------------------------------------


async def test_key_create_get_masks_and_duplicate_hash_conflicts(store: Store) -> None:
    t = await store.create_tenant("a")
    k = await store.create_key(
        t["id"], key_hash=hash_api_key(HASH_KEY, RAW), prefix=RAW[:12], last4=RAW[-4:], name="ci",
        scopes=["gateway:write"], rpm=60, allowed_models=["gpt-4o-mini"], budget_usd=5.0,
    )
    assert k["masked_key"] == f"{RAW[:12]}…{RAW[-4:]}" and "key_hash" not in k
    assert k["scopes"] == ["gateway:write"] and k["budget_usd"] == 5.0
    with pytest.raises(ConflictError):
        await store.create_key(t["id"], key_hash=hash_api_key(HASH_KEY, RAW), prefix="p", last4="x", name="dup")


async def test_key_revocation_is_kept_for_audit_and_is_idempotent(store: Store) -> None:
    t = await store.create_tenant("a")
    k = await _key(store, t["id"])
    r1 = await store.revoke_key(t["id"], k["id"], revoked_by="user-1", reason="leaked")
    r2 = await store.revoke_key(t["id"], k["id"], revoked_by="user-2", reason="again")
    assert r1["status"] == r2["status"] == "revoked"
    assert (r2["revoked_by"], r2["revoked_reason"]) == ("user-1", "leaked")
    (rec,) = await store.get_key_records([k["id"]])
    assert rec.status == "revoked"


async def test_key_list_filters_by_effective_status_and_stats_count_them(store: Store) -> None:
    t = await store.create_tenant("a")
    active = await _key(store, t["id"], "active")
    expired = await _key(store, t["id"], "expired", expires_at=utcnow() - timedelta(minutes=1))
    revoked = await _key(store, t["id"], "revoked")
    await store.revoke_key(t["id"], revoked["id"], revoked_by="u", reason="r")
    assert [k["id"] for k in (await store.list_keys(t["id"], status="active")).items] == [active["id"]]
    assert [k["id"] for k in (await store.list_keys(t["id"], status="expired")).items] == [expired["id"]]
    assert [k["id"] for k in (await store.list_keys(t["id"], status="revoked")).items] == [revoked["id"]]
    all_keys = await store.list_keys(t["id"])
    assert all_keys.total_count == 3
    assert {k["name"]: k["effective_status"] for k in all_keys.items} == {
        "active": "active", "expired": "expired", "revoked": "revoked"}
    stats = await store.key_stats(t["id"])
    assert (stats["total"], stats["active"], stats["expired"], stats["revoked"]) == (3, 1, 1, 1)


async def test_key_update_changes_limits_and_clears_with_none(store: Store) -> None:
    t = await store.create_tenant("a")
    k = await _key(store, t["id"], rpm=10, allowed_models=["a"])
    k2 = await store.update_key(t["id"], k["id"], rpm=None, allowed_models=["b", "c"], scopes=["x"])
    assert k2["rpm"] is None and k2["allowed_models"] == ["b", "c"] and k2["scopes"] == ["x"]
    (rec,) = await store.get_key_records([k["id"]])
    assert rec.allowed_models == ("b", "c") and rec.scopes == ("x",)


async def test_token_limits_beyond_32_bits_are_stored_exactly(store: Store) -> None:
    big = 10_000_000_000          # 10^10 tokens per minute: more than a 32-bit column holds
    t = await store.create_tenant("a")
    k = await _key(store, t["id"], tpm=big)
    assert (await store.get_key(t["id"], k["id"]))["tpm"] == big
    (rec,) = await store.get_key_records([k["id"]])
    assert rec.tpm == big
    assert (await store.update_tenant(t["id"], tpm=big))["tpm"] == big


async def test_keys_are_scoped_by_tenant(store: Store) -> None:
    a = await store.create_tenant("a")
    b = await store.create_tenant("b")
    k = await _key(store, a["id"])
    for call in (
        store.get_key(b["id"], k["id"]),
        store.revoke_key(b["id"], k["id"], revoked_by="x", reason="y"),
        store.update_key(b["id"], k["id"], rpm=1),
        store.delete_key(b["id"], k["id"]),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert (await store.list_keys(b["id"])).total_count == 0
    assert (await store.get_key(a["id"], k["id"]))["status"] == "active"


async def test_record_key_usage_merges_a_batch(store: Store) -> None:
    t = await store.create_tenant("a")
    k = await _key(store, t["id"])
    now = utcnow()
    await store.record_key_usage([
        (k["id"], now - timedelta(seconds=5), 1, 100, 0.01),
        (k["id"], now.timestamp(), 2, 50, 0.02),
    ])
    await store.record_key_usage([(k["id"], now - timedelta(hours=1), 1, 1, 0.0)])
    got = await store.get_key(t["id"], k["id"])
    assert got["usage"] == {"requests": 4, "tokens": 151, "cost_usd": pytest.approx(0.03)}
    assert abs((got["last_used_at"] - now).total_seconds()) < 0.001


async def test_delete_key_removes_it(store: Store) -> None:
    t = await store.create_tenant("a")
    k = await _key(store, t["id"])
    await store.delete_key(t["id"], k["id"])
    with pytest.raises(NotFoundError):
        await store.get_key(t["id"], k["id"])


# ---- policies ---------------------------------------------------------------------------------


async def test_policy_versions_and_rollback(store: Store) -> None:
    t = await store.create_tenant("a")
    p = await store.create_policy(t["id"], "strict", {"injection": {"threshold": 0.5}}, created_by="u")
    assert p["version"] == 1
    p2 = await store.update_policy(t["id"], p["id"], document={"injection": {"threshold": 0.9}}, comment="looser")
    assert p2["version"] == 2 and p2["document"]["injection"]["threshold"] == 0.9
    p3 = await store.rollback_policy(t["id"], p["id"], 1, updated_by="u")
    assert p3["version"] == 3 and p3["document"] == {"injection": {"threshold": 0.5}}
    versions = await store.list_policy_versions(t["id"], p["id"])
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[0]["comment"] == "rollback to version 1"
    (rec,) = await store.get_policy_records([p["id"]])
    assert rec.version == 3 and rec.document == {"injection": {"threshold": 0.5}}
    with pytest.raises(NotFoundError):
        await store.rollback_policy(t["id"], p["id"], 99)


async def test_policy_name_is_unique_per_tenant_and_rename_keeps_version(store: Store) -> None:
    t = await store.create_tenant("a")
    p = await store.create_policy(t["id"], "one", {})
    await store.create_policy(t["id"], "two", {})
    with pytest.raises(ConflictError):
        await store.create_policy(t["id"], "one", {})
    with pytest.raises(ConflictError):
        await store.update_policy(t["id"], p["id"], name="two")
    renamed = await store.update_policy(t["id"], p["id"], name="uno", description="first")
    assert (renamed["name"], renamed["description"], renamed["version"]) == ("uno", "first", 1)
    page = await store.list_policies(t["id"], limit=1)
    assert page.total_count == 2 and page.has_more


async def test_delete_policy_detaches_tenant_and_keys(store: Store) -> None:
    t = await store.create_tenant("a")
    p = await store.create_policy(t["id"], "p", {})
    await store.update_tenant(t["id"], policy_id=p["id"])
    k = await _key(store, t["id"], policy_id=p["id"])
    await store.delete_policy(t["id"], p["id"])
    assert (await store.get_tenant(t["id"]))["policy_id"] is None
    assert (await store.get_key(t["id"], k["id"]))["policy_id"] is None
    assert await store.get_policy_records([p["id"]]) == []


async def test_policies_are_scoped_by_tenant(store: Store) -> None:
    a = await store.create_tenant("a")
    b = await store.create_tenant("b")
    p = await store.create_policy(a["id"], "p", {"x": 1})
    for call in (
        store.get_policy(b["id"], p["id"]),
        store.update_policy(b["id"], p["id"], document={}),
        store.list_policy_versions(b["id"], p["id"]),
        store.rollback_policy(b["id"], p["id"], 1),
        store.delete_policy(b["id"], p["id"]),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert (await store.get_policy(a["id"], p["id"]))["version"] == 1


# ---- providers --------------------------------------------------------------------------------


async def test_provider_credentials_are_encrypted_and_never_returned(store: Store) -> None:
    t = await store.create_tenant("a")
    secret = "sk-very-secret-value-123"
    p = await store.create_provider(
        t["id"], "openai", "openai", base_url="https://api.openai.com/v1",
        credentials={"api_key": secret}, models=[{"name": "gpt-4o", "input_per_1k": 0.0025}],
    )
    assert p["has_credentials"] is True and "credentials_enc" not in p
    assert secret not in repr(p) and secret not in repr(await store.list_providers(t["id"]))
    raw = await store.db.fetchval("SELECT credentials_enc FROM providers WHERE id = $1", p["id"])
    assert secret.encode() not in bytes(raw)
    assert await store.get_provider_credentials(t["id"], p["id"]) == {"api_key": secret}


async def test_provider_ciphertext_is_bound_to_its_row(store: Store) -> None:
    t = await store.create_tenant("a")
    p1 = await store.create_provider(t["id"], "one", "openai", credentials={"api_key": "one"})
    p2 = await store.create_provider(t["id"], "two", "openai", credentials={"api_key": "two"})
    blob = await store.db.fetchval("SELECT credentials_enc FROM providers WHERE id = $1", p1["id"])
    async with store.db.transaction() as conn:
        await conn.execute("UPDATE providers SET credentials_enc = $2 WHERE id = $1", p2["id"], blob)
    from admin_api.store import DecryptionError

    with pytest.raises(DecryptionError):
        await store.get_provider_credentials(t["id"], p2["id"])


async def test_provider_update_replaces_credentials_and_rotation_reseals(store: Store) -> None:
    t = await store.create_tenant("a")
    p = await store.create_provider(t["id"], "az", "azure", credentials={"api_key": "old"})
    p = await store.update_provider(t["id"], p["id"], base_url="https://x", credentials={"api_key": "new"})
    assert p["base_url"] == "https://x"
    assert await store.get_provider_credentials(t["id"], p["id"]) == {"api_key": "new"}
    with pytest.raises(ConflictError):
        await store.create_provider(t["id"], "az", "azure")
    old_master = store._master
    assert old_master is not None
    store._master = b"a-brand-new-master-key-000000000"
    store._boxes.clear()
    assert await store.rotate_encryption(old_master) == 1
    assert await store.get_provider_credentials(t["id"], p["id"]) == {"api_key": "new"}


async def test_providers_are_scoped_by_tenant(store: Store) -> None:
    a = await store.create_tenant("a")
    b = await store.create_tenant("b")
    p = await store.create_provider(a["id"], "openai", "openai", credentials={"api_key": "s"})
    for call in (
        store.get_provider(b["id"], p["id"]),
        store.get_provider_credentials(b["id"], p["id"]),
        store.update_provider(b["id"], p["id"], base_url="http://evil"),
        store.delete_provider(b["id"], p["id"]),
    ):
        with pytest.raises(NotFoundError):
            await call
    await store.delete_provider(a["id"], p["id"])
    assert (await store.list_providers(a["id"])).total_count == 0


# ---- kill switches ----------------------------------------------------------------------------


async def test_kill_switch_scopes_and_records(store: Store) -> None:
    a = await store.create_tenant("a")
    b = await store.create_tenant("b")
    k = await _key(store, a["id"])
    await store.set_kill_switch(None, "global", "ignored", reason="incident")
    await store.set_kill_switch(a["id"], "tenant", "ignored", reason="billing")
    await store.set_kill_switch(a["id"], "key", k["id"], reason="abuse")
    await store.set_kill_switch(a["id"], "model", "gpt-4o", reason="cost")
    await store.set_kill_switch(a["id"], "model", "gpt-4o", reason="cost, again")
    records = await store.kill_switch_records()
    got = {(r.scope, r.target, r.tenant_id): r.reason for r in records}
    assert got == {
        ("global", "*", None): "incident",
        ("tenant", a["id"], a["id"]): "billing",
        ("key", k["id"], a["id"]): "abuse",
        ("model", "gpt-4o", a["id"]): "cost, again",
    }
    assert {s["scope"] for s in await store.list_kill_switches(b["id"])} == {"global"}
    with pytest.raises(NotFoundError):
        await store.set_kill_switch(b["id"], "key", k["id"])
    with pytest.raises(NotFoundError):
        await store.clear_kill_switch(b["id"], "model", "gpt-4o")
    await store.clear_kill_switch(a["id"], "model", "gpt-4o")
    await store.clear_kill_switch(None, "global", "*")
    assert {r.scope for r in await store.kill_switch_records()} == {"tenant", "key"}


# ---- audit and request log ------------------------------------------------------------------------


async def test_audit_insert_is_idempotent_on_id(store: Store) -> None:
    t = await store.create_tenant("a")
    event = {"id": new_id(), "tenant_id": t["id"], "ts": utcnow(), "actor": "user:1", "action": "key.create",
             "resource_type": "api_key", "resource_id": "k1", "outcome": "success", "details": {"after": {"n": 1}}}
    await store.write_audit_events([event])
    await store.write_audit_events([event, dict(event, id=new_id(), ts=utcnow().timestamp())])
    page = await store.list_audit_events(t["id"])
    assert page.total_count == 2
    assert page.items[-1]["details"] == {"after": {"n": 1}}


async def test_a_fresh_batch_wrongly_marked_fresh_is_refused_whole_and_a_plain_retry_stores_it_once(
        store: Store) -> None:
    t = await store.create_tenant("a")

    def event() -> dict:
        return {"id": new_id(), "tenant_id": t["id"], "ts": utcnow(), "actor": "user:1", "action": "key.create",
                "resource_type": "api_key", "resource_id": "k1", "outcome": "success", "details": {}}

    stored = event()
    await store.write_audit_events([stored], fresh=True)             # the writer's first attempt
    batch = [stored, event()]                                          # a replay claiming to be fresh
    with pytest.raises(Exception):
        await store.write_audit_events(batch, fresh=True)
    assert await store.log_size(t["id"]) == 1                          # nothing of the refused batch landed
    await store.write_audit_events(batch)
    assert await store.log_size(t["id"]) == 2                          # one leaf per event, none doubled
    assert (await store.list_audit_events(t["id"])).total_count == 2


async def test_audit_events_filter_and_are_scoped(store: Store) -> None:
    a = await store.create_tenant("a")
    b = await store.create_tenant("b")
    await store.write_audit_events([
        {"tenant_id": a["id"], "action": "key.create", "resource_type": "api_key", "actor": "u1"},
        {"tenant_id": a["id"], "action": "key.revoke", "resource_type": "api_key", "actor": "u2"},
        {"tenant_id": b["id"], "action": "key.create", "resource_type": "api_key", "actor": "u3"},
    ])
    assert (await store.list_audit_events(a["id"], action="key.create")).total_count == 1
    assert (await store.list_audit_events(a["id"], actor="u2")).items[0]["action"] == "key.revoke"
    assert (await store.list_audit_events(a["id"], since=utcnow() + timedelta(hours=1))).total_count == 0
    assert {e["actor"] for e in (await store.list_audit_events(b["id"])).items} == {"u3"}


async def test_gateway_requests_log_filters_and_usage_stats(store: Store) -> None:
    a = await store.create_tenant("a")
    b = await store.create_tenant("b")
    rid = new_id()
    rows = [
        {"id": rid, "tenant_id": a["id"], "key_id": "k1", "model": "gpt-4o", "provider": "openai", "status": 200,
         "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.01, "latency_ms": 12.5,
         "security": {"injection_score": 0.1}},
        {"tenant_id": a["id"], "key_id": "k2", "model": "gpt-4o-mini", "status": 422, "blocked": True,
         "reason": "prompt_injection", "ts": utcnow().isoformat()},
        {"tenant_id": b["id"], "key_id": "k3", "model": "gpt-4o", "status": 200, "total_tokens": 999},
    ]
    await store.write_gateway_requests(rows)
    await store.write_gateway_requests(rows[:1])
    assert (await store.list_gateway_requests(a["id"])).total_count == 2
    blocked = await store.list_gateway_requests(a["id"], blocked=True)
    assert [r["reason"] for r in blocked.items] == ["prompt_injection"]
    got = await store.get_gateway_request(a["id"], rid)
    assert got is not None and got["total_tokens"] == 15 and got["security"] == {"injection_score": 0.1}
    assert await store.get_gateway_request(b["id"], rid) is None
    stats = await store.usage_stats(a["id"], days=7)
    assert (stats["requests"], stats["tokens"], stats["blocked"]) == (2, 15, 1)
    assert stats["by_day"][0]["day"] == utcnow().strftime("%Y-%m-%d")
    assert {m["model"] for m in stats["top_models"]} == {"gpt-4o", "gpt-4o-mini"}


# ---- refresh tokens -----------------------------------------------------------------------------


async def test_refresh_rotation_and_reuse_revokes_the_family(store: Store) -> None:
    t = await store.create_tenant("a")
    u = await store.create_user(t["id"], "u@example.com", "h", "member")
    exp = utcnow() + timedelta(days=1)
    family = await store.create_refresh_token(t["id"], u["id"], "h1", exp, user_agent="pytest")
    r = await store.rotate_refresh_token("h1", "h2", exp)
    assert (r.outcome, r.family_id, r.user_id) == ("rotated", family, u["id"])
    reused = await store.rotate_refresh_token("h1", "h3", exp)
    assert reused.outcome == "reused"
    assert (await store.rotate_refresh_token("h2", "h4", exp)).outcome == "reused"
    assert await store.list_sessions(t["id"], u["id"]) == []
    assert (await store.rotate_refresh_token("nope", "h5", exp)).outcome == "invalid"


async def test_expired_refresh_token_is_invalid_and_logout_revokes_all(store: Store) -> None:
    t = await store.create_tenant("a")
    u = await store.create_user(t["id"], "u@example.com", "h", "member")
    await store.create_refresh_token(t["id"], u["id"], "old", utcnow() - timedelta(seconds=1))
    assert (await store.rotate_refresh_token("old", "x", utcnow())).outcome == "invalid"
    f1 = await store.create_refresh_token(t["id"], u["id"], "a1", utcnow() + timedelta(days=1))
    await store.create_refresh_token(t["id"], u["id"], "b1", utcnow() + timedelta(days=1))
    assert len(await store.list_sessions(t["id"], u["id"])) == 2
    assert await store.revoke_session(t["id"], u["id"], f1) == 1
    assert await store.revoke_user_sessions(t["id"], u["id"]) == 2   # "b1" and the expired "old"
    assert await store.list_sessions(t["id"], u["id"]) == []


# ---- data plane: directory, change feed, seeding ---------------------------------------------------


async def test_change_feed_is_ordered_and_covers_every_directory_write(store: Store) -> None:
    start = (await store.load_directory()).seq
    t = await store.create_tenant("a")
    k = await _key(store, t["id"])
    p = await store.create_policy(t["id"], "p", {})
    await store.update_tenant(t["id"], rpm=1)
    await store.revoke_key(t["id"], k["id"], revoked_by="u", reason="r")
    await store.set_kill_switch(t["id"], "tenant", t["id"])
    prov = await store.create_provider(t["id"], "openai", "openai")
    changes = await store.changes_since(start)
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert [(c.kind, c.entity_id) for c in changes if c.kind != "kill_switch"] == [
        ("tenant", t["id"]), ("key", k["id"]), ("policy", p["id"]), ("tenant", t["id"]), ("key", k["id"]),
        ("provider", prov["id"]),
    ]
    assert any(c.kind == "kill_switch" for c in changes)
    assert all(c.tenant_id == t["id"] for c in changes)
    assert await store.changes_since(changes[-1].seq) == []
    assert len(await store.changes_since(start, limit=2)) == 2


async def test_load_directory_snapshot_holds_every_record(store: Store) -> None:
    t = await store.create_tenant("a", allowed_providers=["openai"])
    p = await store.create_policy(t["id"], "p", {"pii": {"enabled": True}})
    k = await _key(store, t["id"], policy_id=p["id"], expires_at=utcnow() + timedelta(days=1))
    await store.set_kill_switch(None, "provider", "anthropic", reason="outage")
    snap = await store.load_directory()
    assert snap.seq == (await store.changes_since(0))[-1].seq
    assert [x.allowed_providers for x in snap.tenants] == [("openai",)]
    (key,) = snap.keys
    assert key.id == k["id"] and key.policy_id == p["id"] and key.expires_at is not None
    assert snap.policies[0].document == {"pii": {"enabled": True}}
    assert snap.kill_switches[0].target == "anthropic"
    assert [r.id for r in await store.get_tenant_records([t["id"], "missing"])] == [t["id"]]
    assert await store.get_key_records([]) == []


async def test_seed_key_is_idempotent(store: Store) -> None:
    first = await store.seed_key("bootstrap-tenant", RAW, HASH_KEY, name="config key", rpm=30)
    again = await store.seed_key("bootstrap-tenant", RAW, HASH_KEY, name="config key", rpm=999)
    assert first == again and first.rpm == 30
    assert first.key_hash == hash_api_key(HASH_KEY, RAW) and first.prefix == RAW[:12]
    snap = await store.load_directory()
    assert len(snap.tenants) == 1 and len(snap.keys) == 1
    key = await store.get_key(first.tenant_id, first.id)
    assert key["source"] == "config" and key["name"] == "config key"


async def test_prune_changes_keeps_the_newest(store: Store) -> None:
    for i in range(5):
        await store.create_tenant(f"t{i}")
    assert await store.prune_changes(keep_last=2) == 3
    assert [c.seq for c in await store.changes_since(0)] == [4, 5]


async def test_ping_answers(store: Store) -> None:
    await store.ping()


async def test_concurrent_writes_get_distinct_ordered_sequence_numbers(store: Store) -> None:
    start = (await store.load_directory()).seq
    tenants = await asyncio.gather(*(store.create_tenant(f"c{i}") for i in range(8)))
    changes = await store.changes_since(start)
    assert len(changes) == 8 and len({c.seq for c in changes}) == 8
    assert {c.entity_id for c in changes} == {t["id"] for t in tenants}


async def test_open_store_rejects_unknown_schemes() -> None:
    from admin_api.store import open_store

    with pytest.raises(ValueError):
        await open_store("mysql://localhost/db")
    with pytest.raises(ValueError):
        await open_store("sqlite:///:memory:")


async def test_rotation_reseals_webhook_and_notification_secrets_too(store: Store) -> None:
    t = await store.create_tenant("rot")
    hook = await store.create_webhook(t["id"], url="https://hooks.example.com/x", secret="whsec-rotate-me")
    await store.put_integration(t["id"], "email", config={"host": "smtp.example.com"}, secret="smtp-pw",
                                keep_secret=False, enabled=True)
    old_master = store._master
    assert old_master is not None
    store._master = b"another-brand-new-master-key-0000"
    store._boxes.clear()
    assert await store.rotate_encryption(old_master) == 2
    assert await store.webhook_secret(t["id"], hook["id"]) == "whsec-rotate-me"
    assert await store.integration_secret(t["id"], "email") == "smtp-pw"


# ---- transactions under cancellation -----------------------------------------------------------
# A task cancelled inside `transaction()` (client gone, timeout, shutdown) must leave the writer
# outside any transaction, with nothing of its work committed, so the next write goes through.


async def _scratch(store: Store) -> None:
    async with store.db.transaction() as conn:
        await conn.execute("CREATE TABLE scratch (id TEXT PRIMARY KEY, grp TEXT NOT NULL)")


async def _insert(conn: Conn, row_id: str, group: str = "a") -> None:
    await conn.execute("INSERT INTO scratch (id, grp) VALUES ($1, $2)", row_id, group)


async def _next_write_commits(store: Store) -> dict[str, str]:
    """Write one more row, then return every row: the writer must not be stuck in the cancelled transaction."""
    async with store.db.transaction() as conn:
        await _insert(conn, "next")
    return {r["id"]: r["grp"] for r in await store.db.fetch("SELECT id, grp FROM scratch")}


def _slow_sql(store: Store) -> str:
    if store.dialect == "postgres":
        return "SELECT pg_sleep(30)"
    return ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000)"
            " SELECT count(*) FROM c")


async def _writer_inside(store: Store, then: Callable[[Conn], Awaitable[Any]]) -> asyncio.Task[None]:
    """A task that inserts a row in a transaction and then awaits `then(conn)`; returned once it is there."""
    inside = asyncio.Event()

    async def write() -> None:
        async with store.db.transaction() as conn:
            await _insert(conn, "cancelled")
            inside.set()
            await then(conn)

    task = asyncio.create_task(write())
    await asyncio.wait_for(inside.wait(), 5)
    await asyncio.sleep(0.1)
    return task


async def _cancelled(task: asyncio.Task[None], times: int = 1) -> None:
    for _ in range(times):
        task.cancel()
        await asyncio.sleep(0)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_write_cancelled_while_awaiting_inside_the_transaction_leaves_nothing(store: Store) -> None:
    await _scratch(store)
    await _cancelled(await _writer_inside(store, lambda _conn: asyncio.Event().wait()))
    assert await _next_write_commits(store) == {"next": "a"}


async def test_a_write_cancelled_during_a_slow_statement_is_rolled_back_promptly(store: Store) -> None:
    await _scratch(store)
    started = time.monotonic()
    await _cancelled(await _writer_inside(store, lambda conn: conn.fetchval(_slow_sql(store))))
    assert await _next_write_commits(store) == {"next": "a"}
    assert time.monotonic() - started < 5.0          # the slow statement was interrupted, not waited out


async def test_a_write_cancelled_again_and_again_during_its_rollback_still_leaves_the_writer_clean(
    store: Store,
) -> None:
    await _scratch(store)
    await _cancelled(await _writer_inside(store, lambda conn: conn.fetchval(_slow_sql(store))), times=5)
    assert await _next_write_commits(store) == {"next": "a"}


async def test_a_write_cancelled_while_waiting_for_a_lock_held_elsewhere_leaves_nothing(store: Store) -> None:
    """SQLite: BEGIN IMMEDIATE waits for another connection's write lock; PostgreSQL: a row lock."""
    await _scratch(store)
    async with store.db.transaction() as conn:
        await _insert(conn, "locked")
    waiting = asyncio.Event()

    async def write() -> None:
        waiting.set()
        async with store.db.transaction() as conn:
            await conn.execute("UPDATE scratch SET grp = $1 WHERE id = $2", "b", "locked")
            await _insert(conn, "cancelled")

    async def cancel_while_blocked() -> None:
        task = asyncio.create_task(write())
        await asyncio.wait_for(waiting.wait(), 5)
        await asyncio.sleep(0.2)
        await _cancelled(task)

    if store.dialect == "sqlite":
        other = sqlite3.connect(store.db.path, isolation_level=None)   # type: ignore[attr-defined]
        other.execute("BEGIN IMMEDIATE")
        try:
            await cancel_while_blocked()
        finally:
            other.execute("ROLLBACK")
            other.close()
    else:
        pg = await asyncpg.connect(PG_URL, server_settings={"search_path": store.db.schema})  # type: ignore[attr-defined]
        try:
            async with pg.transaction():
                await pg.execute("SELECT * FROM scratch WHERE id = 'locked' FOR UPDATE")
                await cancel_while_blocked()
        finally:
            await pg.close()
    assert await _next_write_commits(store) == {"locked": "a", "next": "a"}


async def test_cancelling_half_of_many_concurrent_writers_keeps_every_transaction_whole(store: Store) -> None:
    await _scratch(store)

    async def write(i: int) -> None:
        async with store.db.transaction() as conn:
            await _insert(conn, f"{i}-a", str(i))
            await asyncio.sleep(0.005)
            await _insert(conn, f"{i}-b", str(i))

    tasks = [asyncio.create_task(write(i)) for i in range(40)]
    for i, task in enumerate(tasks):
        if i % 2:
            await asyncio.sleep(0.003)
            task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results), results
    by_group: dict[str, set[str]] = {}
    for row_id, group in (await _next_write_commits(store)).items():
        by_group.setdefault(group, set()).add(row_id)
    assert by_group.pop("a") == {"next"}
    assert all(ids == {f"{g}-a", f"{g}-b"} for g, ids in by_group.items())   # all or nothing per transaction
    done = {str(i) for i, r in enumerate(results) if r is None}
    assert {str(i) for i in range(0, 40, 2)} <= done <= set(by_group)
    # a cancellation that lands during COMMIT (or the pool's release after it) cannot undo the commit,
    # so a few cancelled tasks may have committed; every one that did is whole (checked above)


async def test_a_commit_the_database_refuses_is_rolled_back_and_the_writer_stays_usable(store: Store) -> None:
    """A deferred foreign key fails at COMMIT; SQLite would otherwise keep the transaction open."""
    await _scratch(store)
    async with store.db.transaction() as conn:
        await conn.execute("CREATE TABLE scratch_child (id TEXT PRIMARY KEY, parent TEXT REFERENCES scratch (id)"
                           " DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(NotFoundError):
        async with store.db.transaction() as conn:
            await conn.execute("INSERT INTO scratch_child (id, parent) VALUES ($1, $2)", "orphan", "missing")
    assert await _next_write_commits(store) == {"next": "a"}
    assert await store.db.fetchval("SELECT count(*) FROM scratch_child") == 0
