"""SCIM 2.0: conformance (scim2-tester against the live server), filters, PATCH, provisioning of real
control-plane users (deactivation revokes sessions and keys), groups, token scoping."""
from __future__ import annotations

import asyncio
from typing import Any

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tests.admin.conftest import PASSWORD, AdminHarness, Org

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def _token(admin: AdminHarness, org: Org) -> str:
    _, body = await admin.call("POST", "/api/v1/scim/tokens", org, json={"name": "okta"}, expect=201)
    return str(body["data"]["token"])


async def _scim(admin: AdminHarness, token: str, method: str, path: str, json: Any = None,
                expect: int | None = None, **params: str) -> tuple[int, Any]:
    resp = await admin.client.request(method, f"/scim/v2{path}", json=json, params=params,
                                      headers={"Authorization": f"Bearer {token}",
                                               "Content-Type": "application/scim+json"})
    body = None if resp.status == 204 else await resp.json(content_type=None)
    if expect is not None:
        assert resp.status == expect, (method, path, resp.status, body)
    if resp.status != 204:
        assert resp.content_type == "application/scim+json"
    return resp.status, body


def _user(name: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [USER], "userName": name, "name": {"givenName": name.split("@")[0].title(),
                                                          "familyName": "Tester"}, **extra}


async def test_scim2_tester_finds_no_errors_against_the_live_server(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    token = await _token(admin, a)
    base = str(admin.client.make_url("/scim/v2"))

    def run() -> list[Any]:
        with httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            client = SyncSCIMClient(http)
            client.discover()
            return check_server(client)

    results = await asyncio.to_thread(run)
    bad = [(r.title, r.resource_type, r.reason) for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    assert results and not bad, "\n".join(map(str, bad))


async def test_provisioned_users_are_control_plane_users_and_deactivation_cuts_their_access(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    a, _ = orgs
    token = await _token(admin, a)
    _, created = await _scim(admin, token, "POST", "/Users", _user("dana@a.example", password=PASSWORD,
                                                                    roles=[{"value": "admin"}], externalId="okta-1"),
                             expect=201)
    uid = created["id"]
    assert created["userName"] == "dana@a.example" and created["externalId"] == "okta-1"
    _, member = await admin.call("GET", f"/api/v1/users/{uid}", a, expect=200)
    assert (member["data"]["email"], member["data"]["role"]) == ("dana@a.example", "admin")
    session = await admin.login("dana@a.example")
    dana = Org(a.tenant_id, uid, "dana@a.example", session["access_token"], session["refresh_token"])
    _, key = await admin.call("POST", "/api/v1/keys", dana, json={"name": "dana-ci"}, expect=201)

    _, patched = await _scim(admin, token, "PATCH", f"/Users/{uid}", {
        "schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}, expect=200)
    assert patched["active"] is False
    status, _ = await admin.call("POST", "/api/v1/auth/refresh", json={"refresh_token": dana.refresh})
    assert status == 401
    _, k = await admin.call("GET", f"/api/v1/keys/{key['data']['id']}", a, expect=200)
    assert k["data"]["status"] == "revoked"
    status, _ = await admin.call("POST", "/api/v1/auth/login", json={"email": dana.email, "password": PASSWORD})
    assert status in (401, 403)
    _, trail = await admin.call("GET", "/api/v1/audit/events", a, params={"q": "scim:"}, expect=200)
    assert {(e["action"], e["resource_id"]) for e in trail["data"]} >= {
        ("scim.user.create", uid), ("scim.user.update", uid), ("user.sessions_revoke", uid),
        ("key.revoke", key["data"]["id"])}
    await _scim(admin, token, "DELETE", f"/Users/{uid}", expect=204)
    await admin.call("GET", f"/api/v1/users/{uid}", a, expect=404)
    await _scim(admin, token, "GET", f"/Users/{uid}", expect=404)


async def test_filters_and_pagination_select_users(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    token = await _token(admin, a)
    for name in ("ann@a.example", "bert@a.example", "bea@corp.example"):
        await _scim(admin, token, "POST", "/Users", _user(name, title="Engineer" if "b" in name else "Sales"),
                    expect=201)

    async def names(flt: str, **params: str) -> list[str]:
        _, body = await _scim(admin, token, "GET", "/Users", expect=200, filter=flt, **params)
        return sorted(r["userName"] for r in body["Resources"])

    assert await names('userName eq "ANN@a.example"') == ["ann@a.example"]
    assert await names('userName sw "b" and title eq "engineer"') == ["bea@corp.example", "bert@a.example"]
    assert await names('userName ew "a.example" and not (userName co "ann")') == ["bert@a.example"]
    assert await names('title ne "Sales" or name.givenName eq "Ann"') == [      # the owner has no title
        "alice@example.com", "ann@a.example", "bea@corp.example", "bert@a.example"]
    assert await names("title pr and meta.created gt \"2000-01-01T00:00:00Z\"") == [
        "ann@a.example", "bea@corp.example", "bert@a.example"]
    _, page = await _scim(admin, token, "GET", "/Users", expect=200, filter='userName co "example"',
                          startIndex="2", count="1")
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (4, 2, 1)  # the owner too
    status, err = await _scim(admin, token, "GET", "/Users", filter='userName eq')
    assert (status, err["scimType"]) == (400, "invalidFilter")


async def test_groups_hold_members_and_patch_adds_and_removes_them(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    token = await _token(admin, a)
    ids = []
    for name in ("g1@a.example", "g2@a.example"):
        _, u = await _scim(admin, token, "POST", "/Users", _user(name), expect=201)
        ids.append(u["id"])
    _, group = await _scim(admin, token, "POST", "/Groups", {"schemas": [GROUP], "displayName": "Security",
                                                             "members": [{"value": ids[0]}]}, expect=201)
    gid = group["id"]
    _, group = await _scim(admin, token, "PATCH", f"/Groups/{gid}", {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": ids[1]}]},
        {"op": "remove", "path": f'members[value eq "{ids[0]}"]'},
        {"op": "replace", "path": "displayName", "value": "SecOps"}]}, expect=200)
    assert ([m["value"] for m in group["members"]], group["displayName"]) == ([ids[1]], "SecOps")
    _, user = await _scim(admin, token, "GET", f"/Users/{ids[1]}", expect=200)
    assert [g["display"] for g in user["groups"]] == ["SecOps"]
    _, found = await _scim(admin, token, "GET", "/Groups", expect=200, filter='displayName eq "secops"')
    assert [g["id"] for g in found["Resources"]] == [gid]
    status, err = await _scim(admin, token, "PATCH", f"/Groups/{gid}", {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": "01234567-89ab-7def-8123-456789abcdef"}]}]})
    assert (status, err["scimType"]) == (400, "invalidValue")
    await _scim(admin, token, "DELETE", f"/Groups/{gid}", expect=204)


async def test_a_scim_token_sees_only_its_own_organization(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, b = orgs
    token_a, token_b = await _token(admin, a), await _token(admin, b)
    _, user = await _scim(admin, token_a, "POST", "/Users", _user("only-a@a.example"), expect=201)
    for method, body in (("GET", None), ("PUT", _user("stolen@b.example")), ("DELETE", None),
                         ("PATCH", {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active",
                                                                         "value": False}]})):
        status, err = await _scim(admin, token_b, method, f"/Users/{user['id']}", body)
        assert (status, err["status"]) == (404, "404"), method
    _, listing = await _scim(admin, token_b, "GET", "/Users", expect=200)
    assert "only-a@a.example" not in str(listing)
    status, err = await _scim(admin, "cmscim_not-a-token", "GET", "/Users")
    assert (status, err["status"]) == (401, "401")
    _, tokens = await admin.call("GET", "/api/v1/scim/tokens", a, expect=200)
    assert all("token" not in t for t in tokens["data"])
    await admin.call("DELETE", f"/api/v1/scim/tokens/{tokens['data'][0]['id']}", a, expect=204)
    status, _ = await _scim(admin, token_a, "GET", "/Users")
    assert status == 401
