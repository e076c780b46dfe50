"""Tenant isolation matrix: tenant B's owner, aimed at tenant A's ids, gets 404 and changes nothing.

Every admin route with an id in its path must appear in MATRIX (a test fails when a new one is missing).
"""
from __future__ import annotations

from typing import Any

from admin_api.app import all_routes
from admin_api.resources import scim
from admin_api.store import Store
from admin_api.webhooks import new_secret
from tests.admin.conftest import PASSWORD, AdminHarness, Org

TABLES = ("tenants", "users", "memberships", "api_keys", "policies", "policy_versions", "providers",
          "kill_switches", "refresh_tokens", "gateway_requests", "audit_events", "retention_policies",
          "webhooks", "webhook_deliveries", "scim_tokens", "scim_users", "scim_groups",
          "notification_integrations", "notification_subscriptions", "notification_optouts", "notification_outbox",
          "tool_checks")

SAMPLE_REQUEST = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}

# operation id -> (path template with A's ids filled from `ids`, JSON body or None)
MATRIX: dict[str, tuple[str, dict[str, Any] | None]] = {
    "get_tenant": ("/api/v1/tenants/{tenant}", None),
    "update_tenant": ("/api/v1/tenants/{tenant}", {"rpm": 5}),
    "delete_tenant": ("/api/v1/tenants/{tenant}", None),
    "tenant_usage": ("/api/v1/tenants/{tenant}/usage", None),
    "tenant_roles": ("/api/v1/tenants/{tenant}/roles", None),
    "list_members": ("/api/v1/tenants/{tenant}/members", None),
    "add_member": ("/api/v1/tenants/{tenant}/members", {"user_id": "{user}", "role": "viewer"}),
    "update_member": ("/api/v1/tenants/{tenant}/members/{user}", {"role": "viewer"}),
    "remove_member": ("/api/v1/tenants/{tenant}/members/{user}", None),
    "get_user": ("/api/v1/users/{user}", None),
    "update_user": ("/api/v1/users/{user}", {"name": "hijacked"}),
    "delete_user": ("/api/v1/users/{user}", None),
    "user_sessions": ("/api/v1/users/{user}/sessions", None),
    "revoke_user_sessions": ("/api/v1/users/{user}/sessions", None),
    "revoke_my_session": ("/api/v1/auth/sessions/{session}", None),
    "get_key": ("/api/v1/keys/{key}", None),
    "update_key": ("/api/v1/keys/{key}", {"name": "hijacked"}),
    "key_status": ("/api/v1/keys/{key}/status", None),
    "revoke_key": ("/api/v1/keys/{key}/revoke", {"reason": "hijacked"}),
    "delete_key": ("/api/v1/keys/{key}", None),
    "get_key_restrictions": ("/api/v1/keys/{key}/restrictions", None),
    "set_key_restrictions": ("/api/v1/keys/{key}/restrictions", {"allowed_models": ["x"]}),
    "get_policy": ("/api/v1/policies/{policy}", None),
    "update_policy": ("/api/v1/policies/{policy}", {"description": "hijacked"}),
    "delete_policy": ("/api/v1/policies/{policy}", None),
    "list_versions": ("/api/v1/policies/{policy}/versions", None),
    "rollback_policy": ("/api/v1/policies/{policy}/rollback", {"version": 1}),
    "evaluate_policy": ("/api/v1/policies/{policy}/evaluate", {"request": SAMPLE_REQUEST}),
    "get_provider": ("/api/v1/providers/{provider}", None),
    "update_provider": ("/api/v1/providers/{provider}", {"base_url": "http://evil.example"}),
    "delete_provider": ("/api/v1/providers/{provider}", None),
    "test_provider": ("/api/v1/providers/{provider}/test", None),
    "clear_switch": ("/api/v1/kill-switch/key/{key}", None),
    "get_request": ("/api/v1/requests/{request}", None),
    "set_tenant_status": ("/api/v1/platform/tenants/{tenant}/status", {"status": "suspended", "reason": "x"}),
    "get_event": ("/api/v1/audit/events/{event}", None),
    "event_proof": ("/api/v1/audit/events/{event}/proof", None),
    "inclusion_proof": ("/api/v1/transparency-log/proof/{leaf}", None),   # B's own log is shorter than A's
    "get_webhook": ("/api/v1/webhooks/{webhook}", None),
    "update_webhook": ("/api/v1/webhooks/{webhook}", {"description": "hijacked"}),
    "delete_webhook": ("/api/v1/webhooks/{webhook}", None),
    "rotate_webhook_secret": ("/api/v1/webhooks/{webhook}/rotate-secret", None),
    "list_deliveries": ("/api/v1/webhooks/{webhook}/deliveries", None),
    "test_webhook": ("/api/v1/webhooks/{webhook}/test", None),
    "redeliver": ("/api/v1/webhooks/{webhook}/deliveries/{delivery}/redeliver", None),
    "delete_scim_token": ("/api/v1/scim/tokens/{scim_token}", None),
    # notification channels and topics are names inside the caller's own organization, not ids: B reaching
    # them gets B's own (absent) settings, never A's
    "get_integration": ("/api/v1/notifications/integrations/email", None),
    "put_integration": ("/api/v1/notifications/integrations/slack", {"webhook_url": "http://127.0.0.1:9/x"}),
    "delete_integration": ("/api/v1/notifications/integrations/email", None),
    "test_integration": ("/api/v1/notifications/integrations/email/test", None),
    "get_subscription": ("/api/v1/notifications/subscriptions/key.revoked", None),
    "put_subscription": ("/api/v1/notifications/subscriptions/key.revoked", {"channels": []}),
    "delete_subscription": ("/api/v1/notifications/subscriptions/key.revoked", None),
    "get_check": ("/api/v1/checks/{check}", None),
    "decide_check": ("/api/v1/checks/{check}/decision", {"decision": "allow", "reason": "hijack"}),
    # an agent id is a name inside the caller's own organization: B gets a token bound to B (checked below)
    "issue_agent_token": ("/api/v1/agents/a-agent/token", {}),
}
# Platform routes refuse a tenant owner before any lookup.
EXPECTED = {"set_tenant_status": (403, "AUTH-003"), "put_integration": (422, "ADM-422"),
            "put_subscription": (400, "ADM-400"), "issue_agent_token": (201, None)}
# SCIM endpoints (outside the admin route table) with B's SCIM token: operation -> (method, path, body).
SCIM_MATRIX: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "scim_get_user": ("GET", "/scim/v2/Users/{user}", None),
    "scim_replace_user": ("PUT", "/scim/v2/Users/{user}", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                                           "userName": "hijacked@b.example"}),
    "scim_patch_user": ("PATCH", "/scim/v2/Users/{user}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}]}),
    "scim_delete_user": ("DELETE", "/scim/v2/Users/{user}", None),
    "scim_get_group": ("GET", "/scim/v2/Groups/{group}", None),
    "scim_replace_group": ("PUT", "/scim/v2/Groups/{group}", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "hijacked"}),
    "scim_patch_group": ("PATCH", "/scim/v2/Groups/{group}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "remove", "path": "members"}]}),
    "scim_delete_group": ("DELETE", "/scim/v2/Groups/{group}", None),
    "scim_resource_type": ("GET", "/scim/v2/ResourceTypes/User", None),
    "scim_schema": ("GET", "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", None),
    "scim_unknown": ("GET", "/scim/v2/{group}", None),
}
# discovery documents are the same for every organization
SCIM_EXPECTED = {"scim_resource_type": 200, "scim_schema": 200}


async def _snapshot(store: Store, tenant_id: str) -> dict[str, list[str]]:
    snap: dict[str, list[str]] = {}
    for table in TABLES:
        column = "id" if table == "tenants" else "tenant_id"
        rows = await store.db.fetch(f"SELECT * FROM {table} WHERE {column} = $1", tenant_id)
        snap[table] = sorted(repr(sorted(dict(r).items())) for r in rows)
    return snap


async def _populate_a(admin: AdminHarness, a: Org) -> dict[str, str]:
    _, body = await admin.call("POST", "/api/v1/users", a, json={"email": "dev@a.example", "password": PASSWORD,
                                                                 "role": "member"}, expect=201)
    user = body["data"]["id"]
    await admin.login("dev@a.example")
    _, body = await admin.call("POST", "/api/v1/keys", a, json={"name": "a-key"}, expect=201)
    key = body["data"]["id"]
    _, body = await admin.call("POST", "/api/v1/policies", a, json={"name": "a-policy", "document": {}}, expect=201)
    policy = body["data"]["id"]
    _, body = await admin.call("POST", "/api/v1/providers", a, json={
        "name": "a-openai", "kind": "openai", "base_url": "http://127.0.0.1:9", "credentials": {"api_key": "sk-a"}},
        expect=201)
    provider = body["data"]["id"]
    await admin.call("PUT", "/api/v1/kill-switch", a, json={"scope": "key", "target": key, "reason": "r"},
                     expect=200)
    _, body = await admin.call("GET", "/api/v1/auth/sessions", a, expect=200)
    session = body["data"][0]["id"]
    await admin.store.write_gateway_requests([{"id": "a-request", "tenant_id": a.tenant_id, "status": 200}])
    _, body = await admin.call("GET", "/api/v1/audit/events", a, expect=200)
    event = body["data"][0]["id"]
    leaf = str(await admin.store.log_size(a.tenant_id) - 1)
    hook = await admin.store.create_webhook(a.tenant_id, url="https://hooks.example.com/a", secret=new_secret())
    await admin.store.enqueue_deliveries([(a.tenant_id, hook["id"], event, "key.created", {"type": "key.created"})])
    delivery = (await admin.store.list_deliveries(a.tenant_id, hook["id"])).items[0]["id"]
    scim_token = await admin.store.create_scim_token(a.tenant_id, name="a-idp", token_hash="a" * 64, created_by=None)
    await admin.store.put_integration(a.tenant_id, "email", config={"host": "smtp.a.example", "to": ["x@a.example"]},
                                      secret="pw", keep_secret=False, enabled=True)
    await admin.store.put_subscription(a.tenant_id, "key.revoked", channels=["email"], min_interval_s=60)
    group = await admin.store.save_scim_group(a.tenant_id, None, display_name="a-group", external_id=None,
                                              members=[{"value": user}])
    from datetime import datetime, timedelta, timezone

    from pipeline.ids import uuid7_str

    check = uuid7_str()
    await admin.store.create_pending_check({
        "id": check, "tenant_id": a.tenant_id, "agent_id": "a-agent", "tool_name": "transfer", "category": "payment",
        "risk_level": "HIGH", "policy_name": "a-policy", "timeout_decision": "block", "arguments": {"amount": 5},
        "expires_at": datetime.now(timezone.utc) + timedelta(minutes=5)})
    return {"check": check, "tenant": a.tenant_id, "user": user, "key": key, "policy": policy, "provider": provider,
            "session": session, "request": "a-request", "event": event, "leaf": leaf,
            "webhook": hook["id"], "delivery": delivery, "scim_token": scim_token["id"], "group": group["id"]}


def _fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(**ids)
    if isinstance(template, dict):
        return {k: _fill(v, ids) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, ids) for v in template]
    return template


def test_scim_matrix_covers_every_scim_endpoint_with_a_parameter() -> None:
    assert {r.name for r in scim.PROTOCOL if "{" in r.path} - set(SCIM_MATRIX) == set()


def test_matrix_covers_every_route_with_an_id_in_its_path() -> None:
    with_ids = {r.operation_id for r in all_routes().routes if "{" in r.path}
    assert with_ids - set(MATRIX) == set()


async def test_tenant_b_gets_404_on_tenant_a_ids_and_changes_nothing(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    from admin_api.dispatcher import DISPATCHER

    # the webhook delivery _populate_a queues is due at once: a running dispatcher would send it mid-test
    # and change tenant a's rows for a reason that has nothing to do with tenant b
    await admin.client.server.app[DISPATCHER].stop()
    a, b = orgs
    ids = await _populate_a(admin, a)
    before = await _snapshot(admin.store, a.tenant_id)
    methods = {r.operation_id: r.method for r in all_routes().routes}
    _, scim = await admin.call("POST", "/api/v1/scim/tokens", b, json={"name": "b-idp"}, expect=201)
    for op, (method, template, body) in SCIM_MATRIX.items():
        status, doc = await admin.call(method, _fill(template, ids), scim["data"]["token"], json=_fill(body, ids))
        assert status == SCIM_EXPECTED.get(op, 404), (op, doc)
    for op, (template, body) in MATRIX.items():
        status, problem = await admin.call(methods[op], _fill(template, ids), b, json=_fill(body, ids))
        assert (status, problem.get("error_code")) == EXPECTED.get(op, (404, "ADM-404")), (op, problem)
        if op == "issue_agent_token":
            from pipeline.checks.agent_token import AgentTokens

            claims = AgentTokens(admin.settings.master_key).verify(problem["data"]["token"])
            assert claims.tenant_id == b.tenant_id != a.tenant_id
    assert await _snapshot(admin.store, a.tenant_id) == before


async def test_tenant_b_cannot_reference_tenant_a_objects_in_bodies(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    a, b = orgs
    ids = await _populate_a(admin, a)
    before = await _snapshot(admin.store, a.tenant_id)
    status, _ = await admin.call("PUT", "/api/v1/kill-switch", b,
                                 json={"scope": "key", "target": ids["key"], "reason": "x"})
    assert status == 404
    status, _ = await admin.call("POST", "/api/v1/keys", b, json={"name": "k", "policy_id": ids["policy"]})
    assert status == 422
    status, _ = await admin.call("PATCH", f"/api/v1/tenants/{b.tenant_id}", b, json={"policy_id": ids["policy"]})
    assert status == 422
    status, _ = await admin.call("POST", "/api/v1/auth/switch", b, json={"tenant_id": a.tenant_id})
    assert status == 404
    _, listing = await admin.call("GET", "/api/v1/keys", b, expect=200)
    assert ids["key"] not in str(listing)
    _, listing = await admin.call("GET", "/api/v1/audit-events", b, expect=200)
    assert all(e["tenant_id"] == b.tenant_id for e in listing["data"])
    assert await _snapshot(admin.store, a.tenant_id) == before


async def test_tenant_a_api_key_cannot_reach_tenant_b(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, b = orgs
    ids = await _populate_a(admin, b)     # give B some objects
    _, body = await admin.call("POST", "/api/v1/keys", a, json={"name": "ops", "role": "admin"}, expect=201)
    raw = body["data"]["key"]
    for path in (f"/api/v1/keys/{ids['key']}", f"/api/v1/policies/{ids['policy']}",
                 f"/api/v1/providers/{ids['provider']}", f"/api/v1/users/{ids['user']}",
                 f"/api/v1/tenants/{b.tenant_id}"):
        status, _ = await admin.call("GET", path, raw)
        assert status == 404, path
