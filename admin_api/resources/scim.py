"""SCIM 2.0 service provider (`/scim/v2`) and the admin routes that issue its bearer tokens.

SCIM requests authenticate with a per-organization token (`Authorization: Bearer cmscim_...`,
made by `POST /api/v1/scim/tokens`, shown once, stored as a keyed hash). Users provisioned here
are the organization's own control-plane users: `active: false` disables the user, revokes their
sessions and the API keys they created; DELETE removes the user the same way. Errors are SCIM
error documents (`application/scim+json`). Every SCIM write leaves an audit event (actor `scim:<token id>`).
"""
from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.ids import is_uuid
from admin_api.passwords import hash_password
from admin_api.resources.common import path_id
from admin_api.roles import ROLES
from admin_api.routing import Result, RouteTable
from admin_api.schemas import ID, NAME, TS, array, obj
from admin_api.scim.documents import (
    BASE,
    GROUP_SCHEMA,
    MAX_RESULTS,
    MEDIA_TYPE,
    PATCH_SCHEMA,
    SEARCH_SCHEMA,
    USER_EXTRA,
    USER_SCHEMA,
    error,
    group_document,
    list_response,
    resource_types,
    schemas,
    service_provider_config,
    user_document,
)
from admin_api.scim.filter import FilterError, parse_filter
from admin_api.scim.patch import PatchError, apply_patch
from admin_api.store import ConflictError, NotFoundError
from pipeline.secrets_box import hash_api_key

routes = RouteTable()

TOKEN_PREFIX = "cmscim_"
UNUSABLE_PASSWORD = "!scim-provisioned"      # not a valid hash: the user signs in through SSO only
SCIM_ROLES = tuple(r for r in ROLES if r != "owner")
SCIM_TOKEN = obj({"id": ID, "tenant_id": ID, "name": NAME, "created_by": {"type": ["string", "null"]},
                  "created_at": TS, "last_used_at": {"anyOf": [TS, {"type": "null"}]}})
SCIM_DOC = {"type": "object", "description": "A SCIM document (application/scim+json)."}


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type


def _respond(status: int, doc: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type=MEDIA_TYPE, headers=headers)


def _base(ctx: Ctx) -> str:
    return f"{ctx.request.scheme}://{ctx.request.host}"


ScimHandler = Callable[[Ctx, str, str], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class ScimRoute:
    method: str
    path: str                      # below /scim/v2
    name: str
    summary: str
    endpoint: Callable[[web.Request], Awaitable[web.StreamResponse]]


# The SCIM protocol endpoints. They speak SCIM (application/scim+json, SCIM error documents) and describe
# themselves through /ServiceProviderConfig, /ResourceTypes and /Schemas, so they are installed beside the
# admin routes (`install_protocol`) rather than in the admin OpenAPI document.
PROTOCOL: list[ScimRoute] = []
_INTS = ("startIndex", "count")


def _query(request: web.Request) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for name, raw in request.query.items():
        if name in _INTS:
            if not raw.lstrip("-").isdigit():
                raise ScimError(400, f"{name} must be an integer", "invalidValue")
            query[name] = max(0, int(raw))
        elif len(raw) <= 2000:
            query[name] = raw
    return query


def scim_route(method: str, path: str, summary: str) -> Callable[[ScimHandler], ScimHandler]:
    """Register a SCIM endpoint: SCIM token auth, SCIM error documents, no admin envelope."""
    def register(fn: ScimHandler) -> ScimHandler:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            ctx = Ctx(request)
            try:
                ctx.query = _query(request)
                tenant_id, token_id = await _authenticate(ctx)
                return await fn(ctx, tenant_id, token_id)
            except ScimError as exc:
                return _respond(exc.status, error(exc.status, exc.detail, exc.scim_type))
            except NotFoundError as exc:
                return _respond(404, error(404, str(exc) or "not found"))
            except ConflictError:
                return _respond(409, error(409, "a resource with these values already exists", "uniqueness"))
            except FilterError as exc:
                return _respond(400, error(400, str(exc), "invalidFilter"))
            except PatchError as exc:
                return _respond(400, error(400, str(exc), exc.scim_type))

        PROTOCOL.append(ScimRoute(method, path, fn.__name__, summary, endpoint))
        return fn
    return register


def install_protocol(app: web.Application) -> None:
    """Add the /scim/v2 endpoints to the admin app (the catch-all 404 last)."""
    for route in sorted(PROTOCOL, key=lambda r: r.path == "/{unknown}"):
        app.router.add_route(route.method, BASE + route.path, route.endpoint)


async def _authenticate(ctx: Ctx) -> tuple[str, str]:
    scheme, _, token = ctx.request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        raise ScimError(401, "a SCIM bearer token is required")
    found = await ctx.store.scim_token_tenant(hash_api_key(ctx.settings.hash_key, token))
    if found is None:
        raise ScimError(401, "the SCIM token is not valid")
    tenant_id, token_id = found
    return tenant_id, token_id


async def _json(ctx: Ctx) -> dict[str, Any]:
    raw = await ctx.request.read()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ScimError(400, "the body is not valid JSON", "invalidSyntax") from None
    if not isinstance(doc, dict):
        raise ScimError(400, "the body must be a JSON object", "invalidSyntax")
    return doc


def _project(doc: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """Apply `attributes` / `excludedAttributes` (top-level names; id, schemas and meta always stay)."""
    keep = ctx.query.get("attributes")
    drop = ctx.query.get("excludedAttributes")
    always = {"id", "schemas", "meta"}
    if keep:
        names = {a.strip().split(".")[0].rsplit(":", 1)[-1].lower() for a in keep.split(",")}
        return {k: v for k, v in doc.items() if k in always or k.lower() in names}
    if drop:
        names = {a.strip().split(".")[0].rsplit(":", 1)[-1].lower() for a in drop.split(",")}
        return {k: v for k, v in doc.items() if k in always or k.lower() not in names}
    return doc


async def _search_query(ctx: Ctx) -> None:
    """POST /.search: the SearchRequest body becomes the query (attributes lists joined)."""
    body = await _json(ctx)
    if SEARCH_SCHEMA not in (body.get("schemas") or []):
        raise ScimError(400, f"schemas must include {SEARCH_SCHEMA}", "invalidSyntax")
    query: dict[str, Any] = {}
    for name in ("filter", "startIndex", "count", "sortBy", "sortOrder"):
        if body.get(name) is not None:
            query[name] = body[name]
    for name in ("attributes", "excludedAttributes"):
        if isinstance(body.get(name), list):
            query[name] = ",".join(str(a) for a in body[name])
    ctx.query = query


def _page(ctx: Ctx, docs: list[dict[str, Any]]) -> web.Response:
    text = ctx.query.get("filter")
    if text:
        predicate = parse_filter(text)
        docs = [d for d in docs if predicate(d)]
    start = max(1, int(ctx.query.get("startIndex") or 1))
    count = min(MAX_RESULTS, int(ctx.query.get("count", MAX_RESULTS)))
    window = docs[start - 1:start - 1 + count]
    return _respond(200, list_response([_project(d, ctx) for d in window], len(docs), start))


# ---- discovery ----------------------------------------------------------------------------------


@scim_route("GET", "/ServiceProviderConfig", "SCIM service provider configuration")
async def scim_service_provider_config(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    return _respond(200, service_provider_config(_base(ctx)))


@scim_route("GET", "/ResourceTypes", "SCIM resource types")
async def scim_resource_types(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    docs = resource_types(_base(ctx))
    return _respond(200, list_response(docs, len(docs), 1))


@scim_route("GET", "/ResourceTypes/{name}", "One SCIM resource type")
async def scim_resource_type(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    for doc in resource_types(_base(ctx)):
        if doc["id"] == ctx.param("name"):
            return _respond(200, doc)
    raise ScimError(404, "resource type not found")


@scim_route("GET", "/Schemas", "SCIM schemas")
async def scim_schemas(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    docs = schemas(_base(ctx))
    return _respond(200, list_response(docs, len(docs), 1))


@scim_route("GET", "/Schemas/{schema_id}", "One SCIM schema")
async def scim_schema(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    for doc in schemas(_base(ctx)):
        if doc["id"] == ctx.param("schema_id"):
            return _respond(200, doc)
    raise ScimError(404, "schema not found")


# ---- users --------------------------------------------------------------------------------------


def _role_of(doc: dict[str, Any]) -> str | None:
    for role in doc.get("roles") or []:
        value = role.get("value") if isinstance(role, dict) else None
        if value in SCIM_ROLES:
            return str(value)
    return None


def _ci(doc: dict[str, Any]) -> dict[str, Any]:
    """Attribute names are case-insensitive (RFC 7643 section 2.1): fold them to our canonical case."""
    canonical = {n.lower(): n for n in (*USER_EXTRA, "schemas", "userName", "externalId", "password", "members",
                                        "id", "meta", "groups")}
    return {canonical.get(k.lower(), k): v for k, v in doc.items()}


def _user_input(doc: dict[str, Any]) -> dict[str, Any]:
    doc = _ci(doc)
    if USER_SCHEMA not in (doc.get("schemas") or []):
        raise ScimError(400, f"schemas must include {USER_SCHEMA}", "invalidValue")
    user_name = doc.get("userName")
    if not isinstance(user_name, str) or not user_name.strip() or len(user_name) > 320:
        raise ScimError(400, "userName is required", "invalidValue")
    active = doc.get("active", True)
    if not isinstance(active, bool):
        raise ScimError(400, "active must be a boolean", "invalidValue")
    attrs = {k: doc[k] for k in USER_EXTRA if k in doc}
    name = doc.get("displayName") or (doc.get("name") or {}).get("formatted") or " ".join(
        p for p in ((doc.get("name") or {}).get("givenName"), (doc.get("name") or {}).get("familyName")) if p)
    external = doc.get("externalId")
    if external is not None and not isinstance(external, str):
        raise ScimError(400, "externalId must be a string", "invalidValue")
    password = doc.get("password")
    return {"email": user_name.strip().lower(), "name": str(name or "")[:200], "active": active, "attributes": attrs,
            "external_id": external, "password": password if isinstance(password, str) and password else None,
            "role": _role_of(doc)}


async def _user_doc(ctx: Ctx, tenant_id: str, user_id: str) -> dict[str, Any]:
    user = await ctx.store.scim_user(tenant_id, user_id)
    return user_document(user, await ctx.store.scim_groups(tenant_id), _base(ctx))


async def _cut_off(ctx: Ctx, tenant_id: str, user_id: str, actor: str) -> None:
    """A deactivated or deleted user keeps no session and no API key they created."""
    sessions = await ctx.store.revoke_user_sessions(tenant_id, user_id)
    await audit(ctx, "user.sessions_revoke", "user", user_id, details={"sessions": sessions}, tenant_id=tenant_id,
                actor=actor)
    for key_id in await ctx.store.active_key_ids_created_by(tenant_id, f"user:{user_id}"):
        key = await ctx.store.revoke_key(tenant_id, key_id, revoked_by=actor, reason="user deprovisioned by SCIM")
        await audit(ctx, "key.revoke", "api_key", key_id, after=key, tenant_id=tenant_id, actor=actor)
    await ctx.changed()


async def _save_user(ctx: Ctx, tenant_id: str, token_id: str, user_id: str | None,
                     data: dict[str, Any]) -> dict[str, Any]:
    actor = f"scim:{token_id}"
    status = "active" if data["active"] else "disabled"
    if user_id is None:
        pw = hash_password(data["password"]) if data["password"] else UNUSABLE_PASSWORD
        user = await ctx.store.create_user(tenant_id, data["email"], pw, data["role"] or "member", name=data["name"],
                                           status=status)
        user_id = user["id"]
        before = None
    else:
        before = await ctx.store.scim_user(tenant_id, user_id)
        if before["email"] != data["email"]:
            await ctx.store.rename_scim_user(tenant_id, user_id, data["email"])
        fields: dict[str, Any] = {"name": data["name"], "status": status}
        if data["password"]:
            fields["password_hash"] = hash_password(data["password"])
        if data["role"] and data["role"] != before["role"]:
            fields["role"] = data["role"]
        await ctx.store.update_user(tenant_id, user_id, **fields)
    await ctx.store.set_scim_attributes(tenant_id, user_id, external_id=data["external_id"],
                                        attributes=data["attributes"])
    if status == "disabled" and (before is None or before["status"] == "active"):
        await _cut_off(ctx, tenant_id, user_id, actor)
    after = await ctx.store.scim_user(tenant_id, user_id)
    await audit(ctx, "scim.user.create" if before is None else "scim.user.update", "user", user_id,
                before=before, after=after, tenant_id=tenant_id, actor=actor)
    return after


@scim_route("GET", "/Users", "List users (filter, startIndex, count)")
async def scim_list_users(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    groups = await ctx.store.scim_groups(tenant_id)
    base = _base(ctx)
    return _page(ctx, [user_document(u, groups, base) for u in await ctx.store.scim_users(tenant_id)])


@scim_route("POST", "/Users/.search", "Search users (SearchRequest body)")
async def scim_search_users(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    await _search_query(ctx)
    return await scim_list_users(ctx, tenant_id, token_id)


@scim_route("POST", "/Users", "Provision a user")
async def scim_create_user(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    user = await _save_user(ctx, tenant_id, token_id, None, _user_input(await _json(ctx)))
    doc = await _user_doc(ctx, tenant_id, user["id"])
    return _respond(201, doc, {"Location": doc["meta"]["location"]})


@scim_route("GET", "/Users/{user_id}", "One user")
async def scim_get_user(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    return _respond(200, _project(await _user_doc(ctx, tenant_id, _scim_id(ctx, "user_id")), ctx))


def _scim_id(ctx: Ctx, name: str) -> str:
    value = ctx.param(name)
    if not is_uuid(value):
        raise ScimError(404, "resource not found")
    return value


@scim_route("PUT", "/Users/{user_id}", "Replace a user")
async def scim_replace_user(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    uid = _scim_id(ctx, "user_id")
    await ctx.store.scim_user(tenant_id, uid)
    await _save_user(ctx, tenant_id, token_id, uid, _user_input(await _json(ctx)))
    return _respond(200, await _user_doc(ctx, tenant_id, uid))


def _patch_ops(doc: dict[str, Any]) -> list[Any]:
    if PATCH_SCHEMA not in (doc.get("schemas") or []):
        raise ScimError(400, f"schemas must include {PATCH_SCHEMA}", "invalidSyntax")
    ops = doc.get("Operations")
    if not isinstance(ops, list):
        raise ScimError(400, "Operations must be a list", "invalidSyntax")
    return ops


@scim_route("PATCH", "/Users/{user_id}", "Modify a user (add, replace, remove)")
async def scim_patch_user(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    uid = _scim_id(ctx, "user_id")
    current = await _user_doc(ctx, tenant_id, uid)
    patched = apply_patch(current, _patch_ops(await _json(ctx)))
    patched.pop("groups", None)
    await _save_user(ctx, tenant_id, token_id, uid, _user_input(patched))
    return _respond(200, await _user_doc(ctx, tenant_id, uid))


@scim_route("DELETE", "/Users/{user_id}", "Deprovision a user")
async def scim_delete_user(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    uid = _scim_id(ctx, "user_id")
    before = await ctx.store.scim_user(tenant_id, uid)
    actor = f"scim:{token_id}"
    await _cut_off(ctx, tenant_id, uid, actor)
    await ctx.store.drop_group_member(tenant_id, uid)
    await ctx.store.delete_user(tenant_id, uid)
    await audit(ctx, "scim.user.delete", "user", uid, before=before, tenant_id=tenant_id, actor=actor)
    return web.Response(status=204)


# ---- groups -------------------------------------------------------------------------------------


def _group_input(doc: dict[str, Any]) -> dict[str, Any]:
    doc = {{"displayname": "displayName", "externalid": "externalId"}.get(k.lower(), k): v for k, v in doc.items()}
    if GROUP_SCHEMA not in (doc.get("schemas") or []):
        raise ScimError(400, f"schemas must include {GROUP_SCHEMA}", "invalidValue")
    name = doc.get("displayName")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ScimError(400, "displayName is required", "invalidValue")
    members = []
    for m in doc.get("members") or []:
        if not isinstance(m, dict) or not isinstance(m.get("value"), str):
            raise ScimError(400, "each member needs a value (a user id)", "invalidValue")
        members.append({k: v for k, v in m.items() if k in ("value", "type", "display") and isinstance(v, str)})
    external = doc.get("externalId")
    return {"display_name": name.strip(), "external_id": external if isinstance(external, str) else None,
            "members": members}


async def _save_group(ctx: Ctx, tenant_id: str, token_id: str, group_id: str | None,
                      data: dict[str, Any]) -> dict[str, Any]:
    before = None if group_id is None else await ctx.store.scim_group(tenant_id, group_id)
    try:
        group = await ctx.store.save_scim_group(tenant_id, group_id, **data)
    except NotFoundError as exc:
        if "member" in str(exc):
            raise ScimError(400, str(exc), "invalidValue") from None
        raise
    await audit(ctx, "scim.group.create" if before is None else "scim.group.update", "group", group["id"],
                before=before, after=group, tenant_id=tenant_id, actor=f"scim:{token_id}")
    return group


@scim_route("GET", "/Groups", "List groups (filter, startIndex, count)")
async def scim_list_groups(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    base = _base(ctx)
    return _page(ctx, [group_document(g, base) for g in await ctx.store.scim_groups(tenant_id)])


@scim_route("POST", "/Groups/.search", "Search groups (SearchRequest body)")
async def scim_search_groups(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    await _search_query(ctx)
    return await scim_list_groups(ctx, tenant_id, token_id)


@scim_route("POST", "/Groups", "Create a group")
async def scim_create_group(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    group = await _save_group(ctx, tenant_id, token_id, None, _group_input(await _json(ctx)))
    doc = group_document(group, _base(ctx))
    return _respond(201, doc, {"Location": doc["meta"]["location"]})


@scim_route("GET", "/Groups/{group_id}", "One group")
async def scim_get_group(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    group = await ctx.store.scim_group(tenant_id, _scim_id(ctx, "group_id"))
    return _respond(200, _project(group_document(group, _base(ctx)), ctx))


@scim_route("PUT", "/Groups/{group_id}", "Replace a group")
async def scim_replace_group(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    gid = _scim_id(ctx, "group_id")
    group = await _save_group(ctx, tenant_id, token_id, gid, _group_input(await _json(ctx)))
    return _respond(200, group_document(group, _base(ctx)))


@scim_route("PATCH", "/Groups/{group_id}", "Modify a group (add, replace, remove; members too)")
async def scim_patch_group(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    gid = _scim_id(ctx, "group_id")
    base = _base(ctx)
    current = group_document(await ctx.store.scim_group(tenant_id, gid), base)
    patched = apply_patch(current, _patch_ops(await _json(ctx)))
    group = await _save_group(ctx, tenant_id, token_id, gid, _group_input(patched))
    return _respond(200, group_document(group, base))


@scim_route("DELETE", "/Groups/{group_id}", "Delete a group")
async def scim_delete_group(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    gid = _scim_id(ctx, "group_id")
    before = await ctx.store.scim_group(tenant_id, gid)
    await ctx.store.delete_scim_group(tenant_id, gid)
    await audit(ctx, "scim.group.delete", "group", gid, before=before, tenant_id=tenant_id, actor=f"scim:{token_id}")
    return web.Response(status=204)


@scim_route("POST", "/.search", "Search users and groups at once (SearchRequest body)")
async def scim_search_all(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    await _search_query(ctx)
    groups, base = await ctx.store.scim_groups(tenant_id), _base(ctx)
    users = [user_document(u, groups, base) for u in await ctx.store.scim_users(tenant_id)]
    return _page(ctx, users + [group_document(g, base) for g in groups])


@scim_route("GET", "/{unknown}", "Anything else under /scim/v2: a SCIM 404")
async def scim_unknown(ctx: Ctx, tenant_id: str, token_id: str) -> web.Response:
    raise ScimError(404, "no such SCIM endpoint")


# ---- admin: SCIM tokens -------------------------------------------------------------------------


@routes.route("POST", "/api/v1/scim/tokens", summary="Issue a SCIM bearer token (shown once)", tag="scim",
              permission="users:write", users_only=True, body=obj({"name": NAME}, ("name",)), status=201,
              response={**SCIM_TOKEN, "properties": {**SCIM_TOKEN["properties"], "token": {"type": "string"}}})
async def create_scim_token(ctx: Ctx) -> Any:
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = await ctx.store.create_scim_token(ctx.tenant_id, name=ctx.body["name"],
                                              token_hash=hash_api_key(ctx.settings.hash_key, raw),
                                              created_by=ctx.me.actor)
    await audit(ctx, "scim.token.create", "scim_token", token["id"], after=token)
    return Result({**token, "token": raw}, status=201)


@routes.route("GET", "/api/v1/scim/tokens", summary="SCIM tokens (never the token itself)", tag="scim",
              permission="users:read", response=array(SCIM_TOKEN))
async def list_scim_tokens(ctx: Ctx) -> Any:
    return await ctx.store.list_scim_tokens(ctx.tenant_id)


@routes.route("DELETE", "/api/v1/scim/tokens/{token_id}", summary="Revoke a SCIM token", tag="scim",
              permission="users:write", status=204)
async def delete_scim_token(ctx: Ctx) -> Any:
    tid = path_id(ctx, "token_id", "SCIM token")
    await ctx.store.delete_scim_token(ctx.tenant_id, tid)
    await audit(ctx, "scim.token.delete", "scim_token", tid)
    return Result(status=204)
