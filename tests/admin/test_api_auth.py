"""Sign-in, tokens, refresh rotation with reuse detection, logout, organization switch, MFA, sessions."""
from __future__ import annotations

import time

import pytest

from admin_api import totp
from tests.admin.conftest import PASSWORD, AdminHarness, Org


async def test_login_issues_access_and_refresh_tokens(admin: AdminHarness) -> None:
    d = await admin.login("ROOT@example.com")
    assert d["token_type"] == "Bearer" and d["expires_in"] == 3600 and d["refresh_token"].startswith("cmr_")
    assert d["role"] == "owner" and "keys:write" in d["permissions"] and "password_hash" not in d["user"]
    _, me = await admin.call("GET", "/api/v1/auth/me", d["access_token"], expect=200)
    assert me["data"]["kind"] == "user" and me["data"]["user"]["email"] == "root@example.com"
    assert me["data"]["user"]["last_login_at"] is not None


async def test_wrong_password_and_unknown_email_answer_the_same_401(admin: AdminHarness) -> None:
    s1, b1 = await admin.call("POST", "/api/v1/auth/login", json={"email": "root@example.com", "password": "nope"})
    s2, b2 = await admin.call("POST", "/api/v1/auth/login", json={"email": "who@example.com", "password": "nope"})
    assert s1 == s2 == 401 and b1["detail"] == b2["detail"] and b1["error_code"] == "AUTH-001"


async def test_repeated_failures_are_throttled(admin: AdminHarness) -> None:
    for _ in range(admin.settings.login_attempts):
        status, _ = await admin.call("POST", "/api/v1/auth/login",
                                     json={"email": "root@example.com", "password": "wrong"})
        assert status == 401
    resp = await admin.client.post("/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    _, audit = await admin.call("GET", "/api/v1/audit-events?action=auth.login", admin.platform, expect=200)
    assert {e["outcome"] for e in audit["data"]} >= {"failure", "success"}


async def test_refresh_rotates_and_reuse_revokes_the_family(admin: AdminHarness) -> None:
    first = await admin.login("root@example.com")
    _, body = await admin.call("POST", "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]},
                               expect=200)
    second = body["data"]
    assert second["refresh_token"] != first["refresh_token"]
    await admin.call("GET", "/api/v1/auth/me", second["access_token"], expect=200)
    status, problem = await admin.call("POST", "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert status == 401 and problem["error_code"] == "AUTH-008"
    status, problem = await admin.call("POST", "/api/v1/auth/refresh",
                                       json={"refresh_token": second["refresh_token"]})
    assert status == 401, "the replay revoked the newer token of the same family too"
    _, audit = await admin.call("GET", "/api/v1/audit-events?action=auth.refresh_reuse", admin.platform, expect=200)
    assert audit["data"][0]["outcome"] == "denied"


async def test_unknown_refresh_token_is_401(admin: AdminHarness) -> None:
    status, problem = await admin.call("POST", "/api/v1/auth/refresh", json={"refresh_token": "cmr_nothing"})
    assert status == 401 and problem["error_code"] == "AUTH-009"


async def test_logout_revokes_every_refresh_token(admin: AdminHarness) -> None:
    other = await admin.login("root@example.com")
    await admin.call("POST", "/api/v1/auth/logout", admin.platform, expect=204)
    for token in (admin.platform.refresh, other["refresh_token"]):
        status, _ = await admin.call("POST", "/api/v1/auth/refresh", json={"refresh_token": token})
        assert status == 401


async def test_sessions_list_and_revoke(admin: AdminHarness) -> None:
    await admin.login("root@example.com")
    _, body = await admin.call("GET", "/api/v1/auth/sessions", admin.platform, expect=200)
    assert len(body["data"]) == 2
    target = body["data"][0]["id"]
    await admin.call("DELETE", f"/api/v1/auth/sessions/{target}", admin.platform, expect=204)
    await admin.call("DELETE", f"/api/v1/auth/sessions/{target}", admin.platform, expect=404)
    _, body = await admin.call("GET", "/api/v1/auth/sessions", admin.platform, expect=200)
    assert [s["id"] for s in body["data"]] != [target] and len(body["data"]) == 1


async def test_switch_organization_needs_membership(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, b = orgs
    status, _ = await admin.call("POST", "/api/v1/auth/switch", a, json={"tenant_id": b.tenant_id})
    assert status == 404
    await admin.call("POST", f"/api/v1/tenants/{b.tenant_id}/members", b,
                     json={"email": "alice@example.com", "role": "viewer"}, expect=201)
    _, body = await admin.call("POST", "/api/v1/auth/switch", a, json={"tenant_id": b.tenant_id}, expect=200)
    switched = body["data"]
    assert switched["tenant_id"] == b.tenant_id and switched["role"] == "viewer"
    _, tenants = await admin.call("GET", "/api/v1/tenants", a, expect=200)
    assert {t["id"]: t["role"] for t in tenants["data"]} == {a.tenant_id: "owner", b.tenant_id: "viewer"}
    status, _ = await admin.call("POST", "/api/v1/keys", switched["access_token"], json={"name": "x"})
    assert status == 403


async def test_removed_member_loses_access_at_once(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, b = orgs
    await admin.call("POST", f"/api/v1/tenants/{b.tenant_id}/members", b,
                     json={"email": "alice@example.com", "role": "admin"}, expect=201)
    _, body = await admin.call("POST", "/api/v1/auth/switch", a, json={"tenant_id": b.tenant_id}, expect=200)
    token = body["data"]["access_token"]
    await admin.call("GET", "/api/v1/keys", token, expect=200)
    await admin.call("DELETE", f"/api/v1/tenants/{b.tenant_id}/members/{a.user_id}", b, expect=204)
    status, _ = await admin.call("GET", "/api/v1/keys", token)
    assert status == 401


async def test_mfa_enrolment_then_login_needs_the_code(admin: AdminHarness) -> None:
    status, _ = await admin.call("POST", "/api/v1/auth/mfa", admin.platform, json={"password": "wrong"})
    assert status == 403
    _, body = await admin.call("POST", "/api/v1/auth/mfa", admin.platform, json={"password": PASSWORD}, expect=201)
    secret = body["data"]["secret"]
    assert body["data"]["otpauth_uri"].startswith("otpauth://totp/")
    status, problem = await admin.call("POST", "/api/v1/auth/login",
                                       json={"email": "root@example.com", "password": PASSWORD})
    assert status == 401 and problem["error_code"] == "AUTH-007"
    status, _ = await admin.call("POST", "/api/v1/auth/login",
                                 json={"email": "root@example.com", "password": PASSWORD, "mfa_code": "000000"})
    assert status == 401
    d = await admin.login("root@example.com", mfa_code=totp.code_at(secret, time.time()))
    assert d["user"]["mfa_enabled"] is True
    await admin.call("POST", "/api/v1/auth/mfa/disable", d["access_token"],
                     json={"password": PASSWORD, "mfa_code": totp.code_at(secret, time.time())}, expect=204)
    await admin.login("root@example.com")


async def test_registration_can_be_disabled(admin: AdminHarness) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from admin_api.app import create_admin_app
    from admin_api.settings import AdminSettings

    app = create_admin_app(admin.store, AdminSettings(master_key=b"k" * 32))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.post("/api/v1/auth/register", json={"email": "x@example.com", "password": PASSWORD,
                                                                 "organization": "X"})
        assert resp.status == 403


async def test_register_refuses_weak_password_and_taken_name(admin: AdminHarness) -> None:
    status, body = await admin.call("POST", "/api/v1/auth/register",
                                    json={"email": "x@example.com", "password": "short", "organization": "New"})
    assert status == 400 and body["errors"][0]["field"] == "password"
    status, _ = await admin.call("POST", "/api/v1/auth/register",
                                 json={"email": "x@example.com", "password": PASSWORD, "organization": "Platform"})
    assert status == 409


async def test_tampered_or_foreign_tokens_are_rejected(admin: AdminHarness) -> None:
    from admin_api.tokens import TokenIssuer

    forged, _ = TokenIssuer(b"another-server-secret-0123456789").issue_access(
        user_id=admin.platform.user_id, tenant_id=admin.platform.tenant_id, role="owner", permissions=["keys:write"])
    for token in (forged, admin.platform.access[:-4] + "AAAA", "garbage"):
        status, body = await admin.call("GET", "/api/v1/keys", token)
        assert status == 401 and body["error_code"] == "AUTH-001"


async def test_expired_access_token_says_so(admin: AdminHarness) -> None:
    from admin_api.tokens import TokenIssuer

    issuer = TokenIssuer(admin.settings.master_key)
    old, _ = issuer.issue_access(user_id=admin.platform.user_id, tenant_id=admin.platform.tenant_id, role="owner",
                                 permissions=[], now=time.time() - 7200)
    status, body = await admin.call("GET", "/api/v1/keys", old)
    assert status == 401 and body["error_code"] == "AUTH-004"


async def test_disabled_user_is_locked_out(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("POST", "/api/v1/users", a, json={"email": "m@example.com", "password": PASSWORD,
                                                                 "role": "member"}, expect=201)
    member = await admin.login("m@example.com")
    await admin.call("PATCH", f"/api/v1/users/{body['data']['id']}", a, json={"status": "disabled"}, expect=200)
    status, problem = await admin.call("GET", "/api/v1/auth/me", member["access_token"])
    assert status == 401 and problem["error_code"] == "AUTH-006"
    status, _ = await admin.call("POST", "/api/v1/auth/refresh", json={"refresh_token": member["refresh_token"]})
    assert status == 401


@pytest.mark.parametrize("path", ["/api/v1/auth/logout", "/api/v1/auth/sessions"])
async def test_api_keys_cannot_use_user_only_routes(admin: AdminHarness, path: str) -> None:
    method = "POST" if path.endswith("logout") else "GET"
    _, body = await admin.call("POST", "/api/v1/keys", admin.platform, json={"name": "ops", "role": "admin"},
                               expect=201)
    status, _ = await admin.call(method, path, body["data"]["key"])
    assert status == 403
