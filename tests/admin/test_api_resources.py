"""Resources of the admin API, each on SQLite and PostgreSQL."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from admin_api.store.codec import utcnow
from pipeline.secrets_box import API_KEY_PREFIX
from tests.admin.conftest import PASSWORD, AdminHarness, Org


async def _audit(admin: AdminHarness, who: Org, action: str) -> list[dict[str, Any]]:
    _, body = await admin.call("GET", f"/api/v1/audit-events?action={action}", who, expect=200)
    return body["data"]


# ---- tenants, members, users ---------------------------------------------------------------------


async def test_tenant_get_update_and_usage(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("GET", f"/api/v1/tenants/{a.tenant_id}", a, expect=200)
    assert body["data"]["name"] == "Org A"
    _, body = await admin.call("PATCH", f"/api/v1/tenants/{a.tenant_id}", a,
                               json={"name": "Org A2", "rpm": 100, "settings": {"description": "d"}}, expect=200)
    assert (body["data"]["name"], body["data"]["rpm"], body["data"]["settings"]) == ("Org A2", 100,
                                                                                   {"description": "d"})
    status, _ = await admin.call("PATCH", f"/api/v1/tenants/{a.tenant_id}", a, json={"name": "Org B"})
    assert status == 409
    status, body = await admin.call("PATCH", f"/api/v1/tenants/{a.tenant_id}", a,
                                    json={"settings": {"platform": True}})
    assert status == 400 and body["errors"][0]["field"] == "settings.platform"
    (event,) = await _audit(admin, a, "tenant.update")
    assert event["details"]["before"]["name"] == "Org A" and event["details"]["after"]["name"] == "Org A2"
    await admin.store.write_gateway_requests([{"tenant_id": a.tenant_id, "model": "gpt-4o", "status": 200,
                                               "total_tokens": 7, "cost_usd": 0.5}])
    _, body = await admin.call("GET", f"/api/v1/tenants/{a.tenant_id}/usage?days=7", a, expect=200)
    assert (body["data"]["requests"], body["data"]["tokens"]) == (1, 7)


async def test_create_and_delete_an_organization(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("POST", "/api/v1/tenants", a, json={"name": "Side project"}, expect=201)
    new = body["data"]
    assert new["role"] == "owner"
    _, body = await admin.call("POST", "/api/v1/auth/switch", a, json={"tenant_id": new["id"]}, expect=200)
    token = body["data"]["access_token"]
    await admin.call("DELETE", f"/api/v1/tenants/{new['id']}", token, expect=204)
    _, body = await admin.call("GET", "/api/v1/tenants", a, expect=200)
    assert [t["id"] for t in body["data"]] == [a.tenant_id]


async def test_platform_organization_cannot_be_deleted(admin: AdminHarness) -> None:
    status, _ = await admin.call("DELETE", f"/api/v1/tenants/{admin.boot.tenant_id}", admin.platform)
    assert status == 403


async def test_roles_list_shows_what_the_caller_may_assign(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    await admin.call("POST", "/api/v1/users", a, json={"email": "sec@example.com", "password": PASSWORD,
                                                       "role": "security_admin"}, expect=201)
    sec = await admin.login("sec@example.com")
    _, body = await admin.call("GET", f"/api/v1/tenants/{a.tenant_id}/roles", sec["access_token"], expect=200)
    assignable = {r["role"] for r in body["data"] if r["assignable"]}
    assert "owner" not in assignable and "viewer" in assignable
    status, _ = await admin.call("POST", "/api/v1/keys", sec["access_token"], json={"name": "x", "role": "owner"})
    assert status == 403


async def test_user_crud_and_owner_protection(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("POST", "/api/v1/users", a, json={"email": "Dev@Example.com", "password": PASSWORD,
                                                                 "name": "Dev", "role": "member"}, expect=201)
    dev = body["data"]
    assert dev["email"] == "dev@example.com" and dev["role"] == "member"
    status, _ = await admin.call("POST", "/api/v1/users", a, json={"email": "dev@example.com", "password": PASSWORD,
                                                                   "role": "member"})
    assert status == 409
    await admin.call("PATCH", f"/api/v1/users/{dev['id']}", a, json={"role": "admin", "name": "Dev 2"}, expect=200)
    _, body = await admin.call("GET", f"/api/v1/users/{dev['id']}", a, expect=200)
    assert (body["data"]["role"], body["data"]["name"]) == ("admin", "Dev 2")
    status, body = await admin.call("PATCH", f"/api/v1/users/{a.user_id}", a, json={"role": "admin"})
    assert status == 422 and "owner" in body["detail"]
    status, _ = await admin.call("DELETE", f"/api/v1/users/{a.user_id}", a)
    assert status == 422
    _, body = await admin.call("GET", "/api/v1/users", a, expect=200)
    assert body["meta"]["pagination"]["total_count"] == 2
    await admin.call("PATCH", f"/api/v1/users/{dev['id']}", a, json={"password": "another long secret"}, expect=200)
    await admin.login("dev@example.com", "another long secret")
    _, body = await admin.call("GET", f"/api/v1/users/{dev['id']}/sessions", a, expect=200)
    assert len(body["data"]) == 1
    await admin.call("DELETE", f"/api/v1/users/{dev['id']}/sessions", a, expect=204)
    await admin.call("DELETE", f"/api/v1/users/{dev['id']}", a, expect=204)
    await admin.call("GET", f"/api/v1/users/{dev['id']}", a, expect=404)
    (created,) = await _audit(admin, a, "user.create")
    assert "password" not in str(created["details"]).lower().replace("password_changed", "")


async def test_members_add_change_remove(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, b = orgs
    _, body = await admin.call("POST", f"/api/v1/tenants/{a.tenant_id}/members", a,
                               json={"user_id": b.user_id, "role": "auditor"}, expect=201)
    assert body["data"]["role"] == "auditor"
    status, _ = await admin.call("POST", f"/api/v1/tenants/{a.tenant_id}/members", a,
                                 json={"user_id": b.user_id, "role": "auditor"})
    assert status == 409
    status, _ = await admin.call("POST", f"/api/v1/tenants/{a.tenant_id}/members", a,
                                 json={"email": "nobody@example.com", "role": "viewer"})
    assert status == 404
    _, body = await admin.call("GET", f"/api/v1/tenants/{a.tenant_id}/members", a, expect=200)
    assert {m["email"]: m["role"] for m in body["data"]} == {"alice@example.com": "owner", "bob@example.com": "auditor"}
    await admin.call("PATCH", f"/api/v1/tenants/{a.tenant_id}/members/{b.user_id}", a, json={"role": "viewer"},
                     expect=200)
    status, _ = await admin.call("PATCH", f"/api/v1/users/{b.user_id}", a, json={"name": "renamed"})
    assert status == 422, "a guest's profile belongs to their home organization"
    await admin.call("DELETE", f"/api/v1/tenants/{a.tenant_id}/members/{b.user_id}", a, expect=204)
    status, _ = await admin.call("DELETE", f"/api/v1/tenants/{a.tenant_id}/members/{a.user_id}", a)
    assert status == 422


# ---- API keys -----------------------------------------------------------------------------------


async def test_key_secret_is_shown_once_and_works_as_a_credential(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("POST", "/api/v1/keys", a, json={
        "name": "ci", "role": "viewer", "expires_in_days": 30, "rpm": 60, "tpm": 10000,
        "allowed_models": ["gpt-4o-mini"], "budget_usd": 12.5, "scopes": ["keys:read", "gateway:write"],
    }, expect=201)
    key = body["data"]
    raw = key["key"]
    assert raw.startswith(API_KEY_PREFIX) and key["masked_key"] == f"{raw[:12]}…{raw[-4:]}"
    assert key["effective_status"] == "active" and key["created_by"] == f"user:{a.user_id}"
    _, got = await admin.call("GET", f"/api/v1/keys/{key['id']}", a, expect=200)
    assert "key" not in got["data"] and raw not in str(got)
    _, listing = await admin.call("GET", "/api/v1/keys", raw, expect=200)
    assert [k["id"] for k in listing["data"]] == [key["id"]]
    status, _ = await admin.call("GET", "/api/v1/users", raw)
    assert status == 403, "scopes narrow what the key's role allows"
    assert admin.nudges, "the data plane was told about the new key"
    (event,) = await _audit(admin, a, "key.create")
    assert raw not in str(event) and event["actor"] == f"user:{a.user_id}"


async def test_revoked_key_is_kept_and_refused(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("POST", "/api/v1/keys", a, json={"name": "ops", "role": "admin"}, expect=201)
    key = body["data"]
    status, body = await admin.call("POST", f"/api/v1/keys/{key['id']}/revoke", a, json={})
    assert status == 400 and body["errors"][0]["field"] == "reason"
    _, body = await admin.call("POST", f"/api/v1/keys/{key['id']}/revoke", a, json={"reason": "leaked"}, expect=200)
    assert (body["data"]["status"], body["data"]["revoked_reason"]) == ("revoked", "leaked")
    assert body["data"]["revoked_by"] == f"user:{a.user_id}"
    status, problem = await admin.call("GET", "/api/v1/keys", key["key"])
    assert status == 401 and problem["error_code"] == "AUTH-002"
    _, body = await admin.call("GET", f"/api/v1/keys/{key['id']}/status", a, expect=200)
    assert body["data"]["status"] == "revoked" and body["data"]["reason"] == "leaked"
    _, body = await admin.call("GET", "/api/v1/keys?status=revoked", a, expect=200)
    assert [k["id"] for k in body["data"]] == [key["id"]]
    _, body = await admin.call("GET", "/api/v1/keys/stats", a, expect=200)
    assert (body["data"]["total"], body["data"]["revoked"], body["data"]["active"]) == (1, 1, 0)
    await admin.call("DELETE", f"/api/v1/keys/{key['id']}", a, expect=204)
    await admin.call("GET", f"/api/v1/keys/{key['id']}", a, expect=404)


async def test_expired_key_is_refused_with_its_reason(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("POST", "/api/v1/keys", a, json={"name": "old", "role": "viewer"}, expect=201)
    key = body["data"]
    async with admin.store.db.transaction() as conn:
        await conn.execute("UPDATE api_keys SET expires_at = $2 WHERE id = $1", key["id"], utcnow())
    status, problem = await admin.call("GET", "/api/v1/keys", key["key"])
    assert status == 401 and problem["error_code"] == "AUTH-004"
    _, body = await admin.call("GET", f"/api/v1/keys/{key['id']}/status", a, expect=200)
    assert body["data"]["status"] == "expired"


async def test_key_update_and_bad_expiry(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    status, _ = await admin.call("POST", "/api/v1/keys", a, json={"name": "k", "expires_at": "2001-01-01T00:00:00Z"})
    assert status == 422
    status, _ = await admin.call("POST", "/api/v1/keys", a, json={"name": "k", "policy_id": a.user_id})
    assert status == 422
    _, body = await admin.call("POST", "/api/v1/keys", a, json={"name": "k", "expires_at": "2999-01-01T00:00:00Z"},
                               expect=201)
    kid = body["data"]["id"]
    _, body = await admin.call("PATCH", f"/api/v1/keys/{kid}", a, json={"rpm": None, "budget_usd": 3, "name": "k2"},
                               expect=200)
    assert (body["data"]["name"], body["data"]["budget_usd"], body["data"]["rpm"]) == ("k2", 3, None)


# ---- policies -----------------------------------------------------------------------------------


async def test_policy_versions_rollback_and_validation(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    status, body = await admin.call("POST", "/api/v1/policies", a,
                                    json={"name": "bad", "document": {"max_tokens": "lots"}})
    assert status == 400 and body["errors"][0]["field"] == "document.max_tokens"
    _, body = await admin.call("POST", "/api/v1/policies", a, json={
        "name": "strict", "description": "first", "document": {"models": {"allow": ["gpt-4o-mini"]}, "max_tokens": 256},
    }, expect=201)
    pid = body["data"]["id"]
    status, _ = await admin.call("POST", "/api/v1/policies", a, json={"name": "strict", "document": {}})
    assert status == 409
    _, body = await admin.call("PATCH", f"/api/v1/policies/{pid}", a,
                               json={"document": {"max_tokens": 1024}, "comment": "looser"}, expect=200)
    assert body["data"]["version"] == 2
    _, body = await admin.call("POST", f"/api/v1/policies/{pid}/rollback", a, json={"version": 1}, expect=200)
    assert body["data"]["version"] == 3 and body["data"]["document"]["max_tokens"] == 256
    status, _ = await admin.call("POST", f"/api/v1/policies/{pid}/rollback", a, json={"version": 9})
    assert status == 422
    _, body = await admin.call("GET", f"/api/v1/policies/{pid}/versions", a, expect=200)
    assert [v["version"] for v in body["data"]] == [3, 2, 1]
    _, body = await admin.call("GET", "/api/v1/policies", a, expect=200)
    assert body["meta"]["pagination"]["total_count"] == 1
    await admin.call("PATCH", f"/api/v1/tenants/{a.tenant_id}", a, json={"policy_id": pid}, expect=200)
    await admin.call("DELETE", f"/api/v1/policies/{pid}", a, expect=204)
    _, body = await admin.call("GET", f"/api/v1/tenants/{a.tenant_id}", a, expect=200)
    assert body["data"]["policy_id"] is None


async def test_policy_evaluate_dry_runs_a_request(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("POST", "/api/v1/policies", a, json={
        "name": "p", "document": {"models": {"allow": ["gpt-4o-mini"]}, "max_tokens": 100}}, expect=201)
    pid = body["data"]["id"]
    sample = {"model": "gpt-4o", "max_tokens": 500, "messages": [{"role": "user", "content": "hello"}]}
    _, body = await admin.call("POST", f"/api/v1/policies/{pid}/evaluate", a, json={"request": sample}, expect=200)
    result = body["data"]
    assert result["decision"] == "block"
    assert set(result["violations"]) >= {"model_not_allowed", "max_tokens_exceeded"}
    ok = {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "What is 2+2?"}]}
    _, body = await admin.call("POST", f"/api/v1/policies/{pid}/evaluate", a, json={"request": ok}, expect=200)
    assert body["data"]["decision"] in ("allow", "flag") and body["data"]["violations"] == []


# ---- providers ----------------------------------------------------------------------------------


async def _upstream(expected_key: str) -> TestServer:
    async def models(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {expected_key}":
            return web.json_response({"error": "bad key"}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o"}, {"id": "gpt-4o-mini"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_provider_credentials_go_in_but_never_come_out(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    secret = "sk-test-0123456789-secret"
    upstream = await _upstream(secret)
    try:
        _, body = await admin.call("POST", "/api/v1/providers", a, json={
            "name": "openai", "kind": "openai", "base_url": str(upstream.make_url("/v1")),
            "credentials": {"api_key": secret}, "models": [{"name": "gpt-4o", "input_per_1k": 0.0025}],
        }, expect=201)
        provider = body["data"]
        assert provider["has_credentials"] is True and secret not in str(body)
        for path in (f"/api/v1/providers/{provider['id']}", "/api/v1/providers"):
            _, got = await admin.call("GET", path, a, expect=200)
            assert secret not in str(got)
        _, audit = await admin.call("GET", "/api/v1/audit-events?resource_type=provider", a, expect=200)
        assert secret not in str(audit)
        _, body = await admin.call("POST", f"/api/v1/providers/{provider['id']}/test", a, expect=200)
        assert body["data"]["ok"] is True and body["data"]["models"] == 2
        await admin.call("PATCH", f"/api/v1/providers/{provider['id']}", a,
                         json={"credentials": {"api_key": "wrong"}}, expect=200)
        _, body = await admin.call("POST", f"/api/v1/providers/{provider['id']}/test", a, expect=200)
        assert (body["data"]["ok"], body["data"]["status"]) == (False, 401)
        status, _ = await admin.call("POST", "/api/v1/providers", a, json={
            "name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:1"})
        assert status == 409
        status, body = await admin.call("POST", "/api/v1/providers", a, json={
            "name": "x", "kind": "openai", "base_url": "file:///etc/passwd"})
        assert status == 400 and body["errors"][0]["field"] == "base_url"
        # credentials in the URL would be neither sent nor encrypted: they belong in `credentials`
        status, body = await admin.call("POST", "/api/v1/providers", a, json={
            "name": "x", "kind": "openai", "base_url": "https://user:sk-secret@api.example.com/v1"})
        assert status == 400 and body["errors"][0]["field"] == "base_url" and "sk-secret" not in str(body)
        await admin.call("DELETE", f"/api/v1/providers/{provider['id']}", a, expect=204)
    finally:
        await upstream.close()


async def test_unreachable_provider_reports_failure(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("POST", "/api/v1/providers", a, json={
        "name": "down", "kind": "anthropic", "base_url": "http://127.0.0.1:9", "credentials": {"api_key": "k"}},
        expect=201)
    _, body = await admin.call("POST", f"/api/v1/providers/{body['data']['id']}/test", a, expect=200)
    assert body["data"]["ok"] is False and body["data"]["error"]


# ---- kill switch and restrictions ---------------------------------------------------------------


async def test_kill_switch_scopes_and_permissions(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, b = orgs
    _, body = await admin.call("POST", "/api/v1/keys", a, json={"name": "k"}, expect=201)
    kid = body["data"]["id"]
    await admin.call("PUT", "/api/v1/kill-switch", a, json={"scope": "tenant", "reason": "billing"}, expect=200)
    await admin.call("PUT", "/api/v1/kill-switch", a, json={"scope": "key", "target": kid, "reason": "abuse"},
                     expect=200)
    for scope in ("global", "provider", "model"):
        status, _ = await admin.call("PUT", "/api/v1/kill-switch", a,
                                     json={"scope": scope, "target": "gpt-4o", "reason": "x"})
        assert status == 403, "a tenant cannot switch off what every tenant uses"
    status, _ = await admin.call("PUT", "/api/v1/kill-switch", a, json={"scope": "key", "reason": "x"})
    assert status == 400
    await admin.call("PUT", "/api/v1/kill-switch", admin.platform, json={"scope": "global", "reason": "incident"},
                     expect=200)
    await admin.call("PUT", "/api/v1/kill-switch", admin.platform,
                     json={"scope": "model", "target": "gpt-4o", "reason": "cost"}, expect=200)
    _, body = await admin.call("GET", "/api/v1/kill-switch", a, expect=200)
    assert {(s["scope"], s["target"]) for s in body["data"]} == {
        ("tenant", a.tenant_id), ("key", kid), ("model", "gpt-4o"), ("global", "*")}
    _, body = await admin.call("GET", "/api/v1/kill-switch", b, expect=200)
    assert {s["scope"] for s in body["data"]} == {"global", "model"}
    records = {(r.scope, r.target, r.tenant_id) for r in await admin.store.kill_switch_records()}
    assert ("key", kid, a.tenant_id) in records and ("model", "gpt-4o", None) in records
    status, _ = await admin.call("DELETE", "/api/v1/kill-switch/model/gpt-4o", a)
    assert status == 403
    await admin.call("DELETE", "/api/v1/kill-switch/model/gpt-4o", admin.platform, expect=204)
    await admin.call("DELETE", "/api/v1/kill-switch/model/gpt-4o", admin.platform, expect=404)
    await admin.call("PUT", "/api/v1/kill-switch", admin.platform,
                     json={"scope": "model", "target": "openai/gpt-4o", "reason": "routed name"}, expect=200)
    await admin.call("DELETE", "/api/v1/kill-switch/model/openai/gpt-4o", admin.platform, expect=204)
    await admin.call("DELETE", f"/api/v1/kill-switch/key/{kid}", a, expect=204)
    await admin.call("DELETE", "/api/v1/kill-switch/global/*", admin.platform, expect=204)
    (event,) = await _audit(admin, a, "kill_switch.clear")
    assert event["details"]["before"]["target"] == kid


async def test_restrictions_for_tenant_and_key(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("PUT", "/api/v1/restrictions", a,
                               json={"allowed_models": ["gpt-4o-mini"], "allowed_providers": ["openai"]}, expect=200)
    assert body["data"] == {"allowed_models": ["gpt-4o-mini"], "allowed_providers": ["openai"]}
    _, body = await admin.call("PUT", "/api/v1/restrictions", a, json={"allowed_models": None}, expect=200)
    assert body["data"] == {"allowed_models": None, "allowed_providers": ["openai"]}
    (tenant,) = await admin.store.get_tenant_records([a.tenant_id])
    assert tenant.allowed_models is None and tenant.allowed_providers == ("openai",)
    _, body = await admin.call("POST", "/api/v1/keys", a, json={"name": "k"}, expect=201)
    kid = body["data"]["id"]
    await admin.call("PUT", f"/api/v1/keys/{kid}/restrictions", a, json={"allowed_models": ["a", "b"]}, expect=200)
    _, body = await admin.call("GET", f"/api/v1/keys/{kid}/restrictions", a, expect=200)
    assert body["data"] == {"allowed_models": ["a", "b"], "allowed_providers": None}
    status, _ = await admin.call("PUT", "/api/v1/restrictions", a, json={})
    assert status == 400


# ---- activity and operations ----------------------------------------------------------------------


async def test_request_log_filters_and_costs(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, b = orgs
    await admin.store.write_gateway_requests([
        {"id": "req-1", "tenant_id": a.tenant_id, "key_id": "k1", "model": "gpt-4o", "status": 200,
         "total_tokens": 10, "cost_usd": 0.2, "security": {"injection_score": 0.02}},
        {"id": "req-2", "tenant_id": a.tenant_id, "key_id": "k2", "model": "gpt-4o-mini", "status": 422,
         "blocked": True, "reason": "prompt_injection"},
        {"id": "req-3", "tenant_id": b.tenant_id, "model": "gpt-4o", "status": 200},
    ])
    _, body = await admin.call("GET", "/api/v1/requests?blocked=true", a, expect=200)
    assert [r["id"] for r in body["data"]] == ["req-2"]
    _, body = await admin.call("GET", "/api/v1/requests?model=gpt-4o", a, expect=200)
    assert [r["id"] for r in body["data"]] == ["req-1"]
    _, body = await admin.call("GET", "/api/v1/requests/req-1", a, expect=200)
    assert body["data"]["security"] == {"injection_score": 0.02}
    await admin.call("GET", "/api/v1/requests/req-3", a, expect=404)
    _, body = await admin.call("GET", "/api/v1/requests?from=2999-01-01T00:00:00Z", a, expect=200)
    assert body["data"] == []
    status, _ = await admin.call("GET", "/api/v1/requests?from=yesterday", a)
    assert status == 400
    _, body = await admin.call("GET", "/api/v1/costs?days=1", a, expect=200)
    assert body["data"]["requests"] == 2 and body["data"]["blocked"] == 1
    assert {m["model"] for m in body["data"]["top_models"]} == {"gpt-4o", "gpt-4o-mini"}


async def test_audit_trail_is_filterable_and_needs_audit_read(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    await admin.call("POST", "/api/v1/keys", a, json={"name": "k"}, expect=201)
    _, body = await admin.call("GET", "/api/v1/audit-events?resource_type=api_key", a, expect=200)
    assert [e["action"] for e in body["data"]] == ["key.create"]
    assert body["data"][0]["request_id"]
    await admin.call("POST", "/api/v1/users", a, json={"email": "m@example.com", "password": PASSWORD,
                                                       "role": "member"}, expect=201)
    member = await admin.login("m@example.com")
    status, _ = await admin.call("GET", "/api/v1/audit-events", member["access_token"])
    assert status == 403


async def test_cache_routes_need_the_proxy_runtime(admin: AdminHarness) -> None:
    status, body = await admin.call("GET", "/api/v1/cache/stats", admin.platform)
    assert status == 503 and body["error_code"] == "ADM-503"


async def test_health_and_diagnostics_for_platform_admins(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("GET", "/api/v1/admin/health", admin.platform, expect=200)
    assert body["data"]["store"] == "ok" and body["data"]["uptime_s"] >= 0
    _, body = await admin.call("GET", "/api/v1/diagnostics?mode=full", admin.platform, expect=200)
    assert body["data"]["ok"] is True and {c["name"] for c in body["data"]["checks"]} >= {"store", "clock_skew"}
    _, body = await admin.call("GET", "/api/v1/diagnostics/history", admin.platform, expect=200)
    assert body["data"][0]["mode"] == "full"
    status, _ = await admin.call("GET", "/api/v1/admin/health", a)
    assert status == 403


# ---- platform administration ----------------------------------------------------------------------


async def test_platform_admin_suspends_and_reactivates_an_organization(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    a, _ = orgs
    _, body = await admin.call("GET", "/api/v1/platform/tenants", admin.platform, expect=200)
    assert body["meta"]["pagination"]["total_count"] == 3
    status, _ = await admin.call("GET", "/api/v1/platform/tenants", a)
    assert status == 403
    _, body = await admin.call("PUT", f"/api/v1/platform/tenants/{a.tenant_id}/status", admin.platform,
                               json={"status": "suspended", "reason": "unpaid"}, expect=200)
    assert body["data"]["status"] == "suspended"
    (record,) = await admin.store.get_tenant_records([a.tenant_id])
    assert record.status == "suspended"
    status, problem = await admin.call("GET", "/api/v1/keys", a)
    assert status == 403 and problem["error_code"] == "AUTH-005"
    _, body = await admin.call("GET", "/api/v1/platform/tenants?status=suspended", admin.platform, expect=200)
    assert [t["id"] for t in body["data"]] == [a.tenant_id]
    await admin.call("PUT", f"/api/v1/platform/tenants/{a.tenant_id}/status", admin.platform,
                     json={"status": "active", "reason": "paid"}, expect=200)
    await admin.call("GET", "/api/v1/keys", a, expect=200)
    events = await _audit(admin, a, "tenant.status")
    assert [e["details"]["reason"] for e in events] == ["paid", "unpaid"]
    status, _ = await admin.call("PUT", f"/api/v1/platform/tenants/{admin.boot.tenant_id}/status",
                                 admin.platform, json={"status": "suspended", "reason": "x"})
    assert status == 422


async def test_denied_attempts_are_audited(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    await admin.call("POST", "/api/v1/users", a, json={"email": "v@example.com", "password": PASSWORD,
                                                       "role": "viewer"}, expect=201)
    viewer = await admin.login("v@example.com")
    status, _ = await admin.call("DELETE", f"/api/v1/keys/{a.user_id}", viewer["access_token"])
    assert status == 403
    (event,) = await _audit(admin, a, "access.denied")
    assert event["outcome"] == "denied" and event["details"]["permission"] == "keys:write"
    assert event["actor"] == f"user:{viewer['user']['id']}"
