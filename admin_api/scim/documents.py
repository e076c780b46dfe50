"""SCIM resource documents: Users and Groups as served, the discovery documents, errors and list responses."""
from __future__ import annotations

from typing import Any

from admin_api.store.codec import isoformat

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RT_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
MEDIA_TYPE = "application/scim+json"
BASE = "/scim/v2"
MAX_RESULTS = 200

# attributes a client may set on a User beyond userName/password/externalId, kept as given ("active" is
# also mirrored in the user's status; it is returned when it was given or when the user is disabled)
USER_EXTRA = ("name", "displayName", "nickName", "profileUrl", "title", "userType", "preferredLanguage", "locale",
              "timezone", "emails", "phoneNumbers", "addresses", "ims", "photos", "roles", "entitlements",
              "x509Certificates", "active")


def error(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        doc["scimType"] = scim_type
    return doc


def meta(kind: str, rid: str, created: Any, modified: Any, version: int, base_url: str) -> dict[str, Any]:
    return {"resourceType": kind, "created": isoformat(created), "lastModified": isoformat(modified),
            "location": f"{base_url}{BASE}/{kind}s/{rid}", "version": f'W/"{version}"'}


def user_document(user: dict[str, Any], groups: list[dict[str, Any]], base_url: str) -> dict[str, Any]:
    attrs = dict(user.get("attributes") or {})
    doc: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": user["id"]}
    if user.get("external_id"):
        doc["externalId"] = user["external_id"]
    doc["userName"] = user["email"]
    for name in USER_EXTRA:
        if name in attrs:
            doc[name] = attrs[name]
    if "active" in attrs or user["status"] != "active":
        doc["active"] = user["status"] == "active"
    member_of = [{"value": g["id"], "display": g["display_name"], "$ref": f"{base_url}{BASE}/Groups/{g['id']}",
                  "type": "direct"} for g in groups if any(m["value"] == user["id"] for m in g["members"])]
    if member_of:
        doc["groups"] = member_of
    doc["meta"] = meta("User", user["id"], user["created_at"], user["updated_at"], user.get("version") or 1, base_url)
    return doc


def group_document(group: dict[str, Any], base_url: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": group["id"]}
    if group.get("external_id"):
        doc["externalId"] = group["external_id"]
    doc["displayName"] = group["display_name"]
    doc["members"] = [{**m, "$ref": f"{base_url}{BASE}/Users/{m['value']}"} for m in group["members"]]
    doc["meta"] = meta("Group", group["id"], group["created_at"], group["updated_at"], group["version"], base_url)
    return doc


def list_response(resources: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": start, "itemsPerPage": len(resources),
            "Resources": resources}


def service_provider_config(base_url: str) -> dict[str, Any]:
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://casemate.dev/docs/scim",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [{"type": "oauthbearertoken", "name": "SCIM bearer token", "primary": True,
                                   "description": "A per-organization token from POST /api/v1/scim/tokens."}],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base_url}{BASE}/ServiceProviderConfig"},
    }


def resource_types(base_url: str) -> list[dict[str, Any]]:
    return [
        {"schemas": [RT_SCHEMA], "id": "User", "name": "User", "endpoint": "/Users", "description": "User account",
         "schema": USER_SCHEMA, "schemaExtensions": [],
         "meta": {"resourceType": "ResourceType", "location": f"{base_url}{BASE}/ResourceTypes/User"}},
        {"schemas": [RT_SCHEMA], "id": "Group", "name": "Group", "endpoint": "/Groups", "description": "Group",
         "schema": GROUP_SCHEMA, "schemaExtensions": [],
         "meta": {"resourceType": "ResourceType", "location": f"{base_url}{BASE}/ResourceTypes/Group"}},
    ]


def _attr(name: str, kind: str = "string", *, multi: bool = False, required: bool = False, mutability: str = "readWrite",
          returned: str = "default", uniqueness: str = "none", sub: list[dict[str, Any]] | None = None,
          case_exact: bool = False, ref_types: list[str] | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {"name": name, "type": kind, "multiValued": multi, "description": name, "required": required,
                         "caseExact": case_exact, "mutability": mutability, "returned": returned,
                         "uniqueness": uniqueness}
    if sub is not None:
        a["subAttributes"] = sub
    if ref_types is not None:
        a["referenceTypes"] = ref_types
    return a


def _multi(name: str, types: list[str] | None = None) -> dict[str, Any]:
    return _attr(name, "complex", multi=True, sub=[
        _attr("value"), _attr("display"), _attr("type"), _attr("primary", "boolean")])


def schemas(base_url: str) -> list[dict[str, Any]]:
    user = {
        "schemas": [SCHEMA_SCHEMA], "id": USER_SCHEMA, "name": "User", "description": "User Account",
        "attributes": [
            _attr("userName", required=True, uniqueness="server"),
            _attr("name", "complex", sub=[_attr("formatted"), _attr("familyName"), _attr("givenName"),
                                          _attr("middleName"), _attr("honorificPrefix"), _attr("honorificSuffix")]),
            _attr("displayName"), _attr("nickName"), _attr("profileUrl", "reference", ref_types=["external"]),
            _attr("title"), _attr("userType"), _attr("preferredLanguage"), _attr("locale"), _attr("timezone"),
            _attr("active", "boolean"), _attr("password", mutability="writeOnly", returned="never"),
            _multi("emails"), _multi("phoneNumbers"), _multi("ims"), _multi("photos"),
            _attr("addresses", "complex", multi=True, sub=[
                _attr("formatted"), _attr("streetAddress"), _attr("locality"), _attr("region"),
                _attr("postalCode"), _attr("country"), _attr("type"), _attr("primary", "boolean")]),
            _attr("groups", "complex", multi=True, mutability="readOnly", sub=[
                _attr("value", mutability="readOnly"), _attr("display", mutability="readOnly"),
                _attr("$ref", "reference", mutability="readOnly", ref_types=["Group"]),
                _attr("type", mutability="readOnly")]),
            _multi("entitlements"), _multi("roles"), _multi("x509Certificates"),
        ],
        "meta": {"resourceType": "Schema", "location": f"{base_url}{BASE}/Schemas/{USER_SCHEMA}"},
    }
    group = {
        "schemas": [SCHEMA_SCHEMA], "id": GROUP_SCHEMA, "name": "Group", "description": "Group",
        "attributes": [
            _attr("displayName", required=True),
            _attr("members", "complex", multi=True, sub=[
                _attr("value", mutability="immutable"),
                _attr("$ref", "reference", mutability="immutable", ref_types=["User"]),
                _attr("display", mutability="readOnly"),
                _attr("type", mutability="immutable")]),
        ],
        "meta": {"resourceType": "Schema", "location": f"{base_url}{BASE}/Schemas/{GROUP_SCHEMA}"},
    }
    return [user, group]
