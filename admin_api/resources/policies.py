"""Policies with immutable versions, rollback and a dry run of a sample request."""
from __future__ import annotations

import asyncio
from typing import Any

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.http import conflict, unprocessable
from admin_api.policy_eval import evaluate_request
from admin_api.resources.common import path_id
from admin_api.routing import Result, RouteTable
from admin_api.schemas import JSON_OBJECT, NAME, POLICY, POLICY_DOCUMENT, POLICY_VERSION, array, obj
from admin_api.store import ConflictError, NotFoundError

routes = RouteTable()

# `document` is the chain's own policy schema (pipeline.policy): the body check refuses what the chain
# could not compile (400 naming the field, e.g. document.secrets.identifiers_action) and the OpenAPI
# document references it as #/components/schemas/PolicyDocument.
POLICY_CREATE = obj({"name": NAME, "description": {"type": "string", "maxLength": 2000},
                     "document": POLICY_DOCUMENT}, ("name", "document"))
POLICY_UPDATE = obj({"name": NAME, "description": {"type": "string", "maxLength": 2000}, "document": POLICY_DOCUMENT,
                     "comment": {"type": "string", "maxLength": 500}}, min_properties=1)
ROLLBACK = obj({"version": {"type": "integer", "minimum": 1}}, ("version",))
SAMPLE = obj({
    "request": obj({
        "model": {"type": "string", "minLength": 1, "maxLength": 200},
        "messages": {"type": "array", "maxItems": 256, "items": obj({
            "role": {"type": "string", "enum": ["system", "user", "assistant", "tool", "developer"]},
            "content": {"type": ["string", "null"], "maxLength": 100_000},
        }, ("role",), closed=False)},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
    }, ("model", "messages"), closed=False),
    "provider": {"type": "string", "maxLength": 200},
}, ("request",))
EVALUATION = obj({
    "decision": {"type": "string", "enum": ["allow", "block", "flag"]},
    "violations": array({"type": "string"}),
    "flags": array({"type": "string"}),
    "policy": obj({"name": {"type": "string"}, "fingerprint": {"type": "string"},
                   "stages": array({"type": "string"})}, closed=False),
    "injection": JSON_OBJECT,
}, ("decision", "violations", "flags", "policy"))


@routes.route("GET", "/api/v1/policies", summary="Policies of the organization (current versions)",
              tag="policies", permission="policies:read", paginated=True, response=array(POLICY))
async def list_policies(ctx: Ctx) -> Any:
    return await ctx.store.list_policies(ctx.tenant_id, limit=ctx.limit, after=ctx.after)


@routes.route("POST", "/api/v1/policies", summary="Create a policy (version 1)", tag="policies",
              permission="policies:write", body=POLICY_CREATE, response=POLICY, status=201)
async def create_policy(ctx: Ctx) -> Any:
    try:
        policy = await ctx.store.create_policy(ctx.tenant_id, ctx.body["name"], ctx.body["document"],
                                               description=ctx.body.get("description", ""),
                                               created_by=ctx.me.actor)
    except ConflictError:
        raise conflict("a policy with this name exists") from None
    await ctx.changed()
    await audit(ctx, "policy.create", "policy", policy["id"], after=policy)
    return Result(policy, status=201)


@routes.route("GET", "/api/v1/policies/{policy_id}", summary="One policy (current version)", tag="policies",
              permission="policies:read", response=POLICY)
async def get_policy(ctx: Ctx) -> Any:
    return await ctx.store.get_policy(ctx.tenant_id, path_id(ctx, "policy_id", "policy"))


@routes.route("PATCH", "/api/v1/policies/{policy_id}",
              summary="Rename, describe or change the document (a new document makes a new version)",
              tag="policies", permission="policies:write", body=POLICY_UPDATE, response=POLICY)
async def update_policy(ctx: Ctx) -> Any:
    pid = path_id(ctx, "policy_id", "policy")
    before = await ctx.store.get_policy(ctx.tenant_id, pid)
    try:
        after = await ctx.store.update_policy(
            ctx.tenant_id, pid, document=ctx.body.get("document"), name=ctx.body.get("name"),
            description=ctx.body.get("description"), comment=ctx.body.get("comment", ""), updated_by=ctx.me.actor,
        )
    except ConflictError:
        raise conflict("a policy with this name exists") from None
    await ctx.changed()
    await audit(ctx, "policy.update", "policy", pid, before=before, after=after)
    return after


@routes.route("DELETE", "/api/v1/policies/{policy_id}",
              summary="Delete a policy; its users fall back to the platform policy", tag="policies",
              permission="policies:write", status=204)
async def delete_policy(ctx: Ctx) -> Any:
    pid = path_id(ctx, "policy_id", "policy")
    before = await ctx.store.get_policy(ctx.tenant_id, pid)
    await ctx.store.delete_policy(ctx.tenant_id, pid)
    await ctx.changed()
    await audit(ctx, "policy.delete", "policy", pid, before=before)
    return Result(status=204)


@routes.route("GET", "/api/v1/policies/{policy_id}/versions", summary="Every version, newest first",
              tag="policies", permission="policies:read", response=array(POLICY_VERSION))
async def list_versions(ctx: Ctx) -> Any:
    return await ctx.store.list_policy_versions(ctx.tenant_id, path_id(ctx, "policy_id", "policy"))


@routes.route("POST", "/api/v1/policies/{policy_id}/rollback",
              summary="Make an earlier version current again (recorded as a new version)", tag="policies",
              permission="policies:write", body=ROLLBACK, response=POLICY)
async def rollback_policy(ctx: Ctx) -> Any:
    pid = path_id(ctx, "policy_id", "policy")
    before = await ctx.store.get_policy(ctx.tenant_id, pid)
    try:
        after = await ctx.store.rollback_policy(ctx.tenant_id, pid, ctx.body["version"], updated_by=ctx.me.actor)
    except NotFoundError:
        raise unprocessable(f"policy has no version {ctx.body['version']}") from None
    await ctx.changed()
    await audit(ctx, "policy.rollback", "policy", pid, before=before, after=after,
                details={"to_version": ctx.body["version"]})
    return after


@routes.route("POST", "/api/v1/policies/{policy_id}/evaluate",
              summary="Dry-run a sample chat request against the policy (nothing is sent upstream)",
              tag="policies", permission="policies:read", body=SAMPLE, response=EVALUATION)
async def evaluate_policy(ctx: Ctx) -> Any:
    policy = await ctx.store.get_policy(ctx.tenant_id, path_id(ctx, "policy_id", "policy"))
    tenant = await ctx.store.get_tenant(ctx.tenant_id)
    layers: list[dict[str, Any]] = []
    runtime = ctx.settings.runtime
    platform = getattr(getattr(runtime, "directory", None), "platform_policy", None)
    if isinstance(platform, dict):
        layers.append(platform)
    if tenant["policy_id"] and tenant["policy_id"] != policy["id"]:
        try:
            layers.append((await ctx.store.get_policy(ctx.tenant_id, tenant["policy_id"]))["document"])
        except NotFoundError:
            pass
    layers.append(policy["document"])
    try:
        return await asyncio.to_thread(evaluate_request, layers, policy["name"], ctx.body["request"],
                                       ctx.body.get("provider"))
    except ValueError as exc:
        raise unprocessable(str(exc)) from None
