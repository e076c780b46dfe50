"""Conventions every admin route shares: envelope, problems, request ids, validation, OpenAPI."""
from __future__ import annotations

import yaml
from openapi_spec_validator import validate

from tests.admin.conftest import AdminHarness, Org


async def test_success_is_an_envelope_with_meta_and_request_id(admin: AdminHarness) -> None:
    resp = await admin.client.get("/api/v1/auth/me", headers={**admin.platform.auth, "X-Request-ID": "abc-123"})
    body = await resp.json()
    assert resp.status == 200 and resp.headers["X-Request-ID"] == "abc-123"
    assert body["errors"] is None and body["meta"]["request_id"] == "abc-123"
    assert body["meta"]["version"] == "v1" and body["meta"]["timestamp"].endswith("Z")
    assert body["data"]["tenant_id"] == admin.boot.tenant_id


async def test_unsafe_request_ids_are_replaced(admin: AdminHarness) -> None:
    resp = await admin.client.get("/api/v1/auth/me", headers={**admin.platform.auth, "X-Request-ID": "bad id; <script>"})
    assert resp.headers["X-Request-ID"] != "bad id; <script>" and len(resp.headers["X-Request-ID"]) == 36


async def test_missing_credentials_answer_401_problem(admin: AdminHarness) -> None:
    resp = await admin.client.get("/api/v1/keys")
    body = await resp.json(content_type=None)
    assert resp.status == 401 and resp.content_type == "application/problem+json"
    assert set(body) >= {"type", "title", "status", "detail", "instance", "error_code", "request_id", "timestamp"}
    assert body["instance"] == "/api/v1/keys" and body["request_id"] == resp.headers["X-Request-ID"]


async def test_unknown_route_and_wrong_method_are_problems(admin: AdminHarness) -> None:
    status, body = await admin.call("GET", "/api/v1/nothing-here", admin.platform)
    assert status == 404 and body["error_code"] == "ADM-404"
    resp = await admin.client.request("PUT", "/api/v1/keys/stats", headers=admin.platform.auth)
    assert resp.status == 405 and "GET" in resp.headers.get("Allow", "")


async def test_validation_error_names_the_field(admin: AdminHarness) -> None:
    status, body = await admin.call("POST", "/api/v1/keys", admin.platform, json={"name": "x", "rpm": "fast"})
    assert status == 400 and body["errors"][0]["field"] == "rpm"
    status, body = await admin.call("POST", "/api/v1/keys", admin.platform, json={})
    assert status == 400 and body["errors"][0] == {"field": "name", "message": "is required"}
    status, body = await admin.call("POST", "/api/v1/keys", admin.platform, json={"name": "x", "colour": "red"})
    assert status == 400 and body["errors"][0]["field"] == "colour"
    status, body = await admin.call("POST", "/api/v1/keys", admin.platform, json={"name": "x", "scopes": [1]})
    assert status == 400 and body["errors"][0]["field"] == "scopes.0"


async def test_bad_json_and_bad_query_are_400(admin: AdminHarness) -> None:
    resp = await admin.client.post("/api/v1/keys", data=b"{nope", headers={**admin.platform.auth,
                                                                          "Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json(content_type=None))["errors"][0]["field"] == "body"
    status, body = await admin.call("GET", "/api/v1/keys?limit=0", admin.platform)
    assert status == 400 and body["errors"][0]["field"] == "limit"
    status, body = await admin.call("GET", "/api/v1/keys?sort=name", admin.platform)
    assert status == 400 and body["errors"][0]["field"] == "sort"
    status, body = await admin.call("GET", "/api/v1/keys?cursor=not-a-cursor", admin.platform)
    assert status == 400 and body["errors"][0]["field"] == "cursor"


async def test_oversized_body_is_413(admin: AdminHarness) -> None:
    big = {"name": "x", "description": "y" * (admin.settings.max_body_bytes + 10)}
    status, body = await admin.call("POST", "/api/v1/policies", admin.platform, json=big)
    assert status == 413 and body["status"] == 413


async def test_cursor_pagination_walks_every_item_once(admin: AdminHarness) -> None:
    for i in range(5):
        await admin.call("POST", "/api/v1/keys", admin.platform, json={"name": f"k{i}"}, expect=201)
    seen: list[str] = []
    cursor = None
    while True:
        path = "/api/v1/keys?limit=2" + (f"&cursor={cursor}" if cursor else "")
        _, body = await admin.call("GET", path, admin.platform, expect=200)
        page = body["meta"]["pagination"]
        assert page["total_count"] == 6 and page["limit"] == 2       # 5 + the bootstrap key
        seen += [k["id"] for k in body["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 6


async def test_permission_missing_is_403(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    await admin.call("POST", "/api/v1/users", a, json={"email": "v@example.com", "password": "a long password",
                                                       "role": "viewer"}, expect=201)
    viewer = await admin.login("v@example.com", "a long password")
    status, body = await admin.call("POST", "/api/v1/keys", viewer["access_token"], json={"name": "x"})
    assert status == 403 and body["detail"] == "missing permission keys:write"


async def test_openapi_document_is_valid_and_authenticated(admin: AdminHarness) -> None:
    assert (await admin.client.get("/openapi.json")).status == 401
    _, doc = await admin.call("GET", "/openapi.json", admin.platform, expect=200)
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    create = doc["paths"]["/api/v1/keys"]["post"]
    assert create["x-permission"] == "keys:write"
    assert create["requestBody"]["content"]["application/json"]["schema"]["required"] == ["name"]
    assert "/v1/chat/completions" in doc["paths"]
    resp = await admin.client.get("/openapi.yaml", headers=admin.platform.auth)
    assert resp.status == 200 and yaml.safe_load(await resp.text()) == doc


async def test_every_declared_route_is_in_the_document(admin: AdminHarness) -> None:
    from admin_api.app import all_routes
    from admin_api.openapi import openapi_path

    _, doc = await admin.call("GET", "/openapi.json", admin.platform, expect=200)
    for route in all_routes().routes:
        assert route.method.lower() in doc["paths"][openapi_path(route.path)], route.path


async def test_jwks_publishes_the_signing_keys(admin: AdminHarness) -> None:
    import jwt

    resp = await admin.client.get("/.well-known/jwks.json")
    jwks = await resp.json()
    assert resp.status == 200 and len(jwks["keys"]) == 3
    kid = jwt.get_unverified_header(admin.platform.access)["kid"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    claims = jwt.decode(admin.platform.access, jwt.PyJWK(jwk).key, algorithms=["EdDSA"], audience="casemate-admin")
    assert claims["tid"] == admin.boot.tenant_id and claims["role"] == "owner"
    assert "platform:admin" in claims["permissions"] and claims["sub"] == admin.platform.user_id


async def test_nul_characters_are_refused_naming_the_field(admin: AdminHarness) -> None:
    status, body = await admin.call("PUT", "/api/v1/restrictions", admin.platform,
                                    json={"allowed_models": ["ok", "bad\u0000name"]})
    assert status == 400 and body["errors"][0]["field"] == "allowed_models.1"
    status, body = await admin.call("GET", "/api/v1/requests/abc%00def", admin.platform)
    assert status == 400 and body["errors"][0]["field"] == "request_id"


async def test_the_documented_agent_routes_carry_the_schemas_the_proxy_validates_with(admin: AdminHarness) -> None:
    from pipeline.checks.api import CHECK_BODY, TRACES_BODY, TRACES_QUERY

    _, doc = await admin.call("GET", "/openapi.json", admin.platform, expect=200)
    paths = doc["paths"]
    check = paths["/api/v1/check"]["post"]
    assert check["requestBody"]["content"]["application/json"]["schema"] == CHECK_BODY
    assert "429" in check["responses"]
    assert paths["/api/v1/traces"]["post"]["requestBody"]["content"]["application/json"]["schema"] == TRACES_BODY
    assert [p["name"] for p in paths["/api/v1/traces"]["get"]["parameters"]] == list(TRACES_QUERY)
    for path in ("/api/v1/check/{check_id}/decision", "/api/v1/check/{check_id}", "/api/v1/anomalies", "/mcp"):
        assert path in paths and paths[path]["servers"][0]["url"].endswith(":8080")


async def test_the_admin_app_serves_prometheus_metrics_for_an_admin_only_process(admin: AdminHarness) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    resp = await admin.client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    names = {f.name for f in text_string_to_metric_families(await resp.text())}
    assert {"casemate_webhook_deliveries", "casemate_notifications_sent"} <= names
