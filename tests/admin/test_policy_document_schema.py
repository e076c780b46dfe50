"""The policy document in the admin API is the chain's own schema (pipeline.policy), in the OpenAPI
document and in the request check alike."""
from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from pipeline.policy import POLICY_SCHEMA, validate_policy
from tests.admin.conftest import AdminHarness, Org

REF = {"$ref": "#/components/schemas/PolicyDocument"}
BAD_IDENTIFIERS = {"secrets": {"action": "block", "identifiers_action": "quarantine"}}


def _property_paths(schema: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every named property of a schema, nested ones as dotted paths."""
    out: dict[str, dict[str, Any]] = {}
    for name, sub in (schema.get("properties") or {}).items():
        out[prefix + name] = sub
        out.update(_property_paths(sub, prefix + name + "."))
    return out


def _json_schema(op: dict[str, Any], status: str) -> dict[str, Any]:
    return op["responses"][status]["content"]["application/json"]["schema"]


async def test_openapi_policy_document_is_the_schema_validate_policy_compiles(admin: AdminHarness) -> None:
    _, doc = await admin.call("GET", "/openapi.json", admin.platform, expect=200)
    validate(doc)
    component = doc["components"]["schemas"]["PolicyDocument"]
    assert component == {k: v for k, v in POLICY_SCHEMA.items() if k not in ("$schema", "$id")}
    documented = _property_paths(component)
    for path, sub in _property_paths(POLICY_SCHEMA).items():
        assert documented[path] == sub, path
    assert documented["secrets.identifiers_action"]["enum"] == ["block", "redact", "flag", "shadow", "off"]

    paths = doc["paths"]
    for path, method in (("/api/v1/policies", "post"), ("/api/v1/policies/{policy_id}", "patch")):
        body = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert body["properties"]["document"] == REF, (method, path)
        assert paths[path][method]["responses"]["400"] == {"$ref": "#/components/responses/Problem400"}
    for path, method, status in (("/api/v1/policies", "post", "201"), ("/api/v1/policies/{policy_id}", "get", "200"),
                                 ("/api/v1/policies/{policy_id}", "patch", "200")):
        data = _json_schema(paths[path][method], status)["properties"]["data"]
        assert data["properties"]["document"] == REF, (method, path)
    for path in ("/api/v1/policies", "/api/v1/policies/{policy_id}/versions"):
        items = _json_schema(paths[path]["get"], "200")["properties"]["data"]["items"]
        assert items["properties"]["document"] == REF, path


async def test_unknown_identifiers_action_is_refused_with_a_problem_naming_the_field(
        admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    assert validate_policy(BAD_IDENTIFIERS)                 # the chain refuses it too

    resp = await admin.client.post("/api/v1/policies", headers=a.auth,
                                   json={"name": "p", "document": BAD_IDENTIFIERS})
    problem = await resp.json()
    assert resp.status == 400 and resp.content_type == "application/problem+json"
    assert problem["status"] == 400 and problem["errors"][0]["field"] == "document.secrets.identifiers_action"
    assert problem["detail"].startswith("document.secrets.identifiers_action: ")

    _, body = await admin.call("POST", "/api/v1/policies", a, expect=201, json={
        "name": "p", "document": {"secrets": {"identifiers_action": "off"}}})
    pid = body["data"]["id"]
    status, problem = await admin.call("PATCH", f"/api/v1/policies/{pid}", a, json={"document": BAD_IDENTIFIERS})
    assert status == 400 and problem["errors"][0]["field"] == "document.secrets.identifiers_action"
    _, body = await admin.call("GET", f"/api/v1/policies/{pid}", a, expect=200)
    assert body["data"]["version"] == 1 and body["data"]["document"]["secrets"]["identifiers_action"] == "off"
