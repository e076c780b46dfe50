"""JSON Schema fragments shared by route declarations (validation and OpenAPI alike)."""
from __future__ import annotations

from typing import Any

from admin_api.roles import ALL, ROLES
from pipeline.policy import POLICY_SCHEMA
from pipeline.ratelimit import MAX_RPM, MAX_TPM

Schema = dict[str, Any]

ID: Schema = {"type": "string", "format": "uuid"}
TS: Schema = {"type": "string", "format": "date-time"}
NAME: Schema = {"type": "string", "minLength": 1, "maxLength": 200}
TEXT: Schema = {"type": "string", "maxLength": 2000}
EMAIL: Schema = {"type": "string", "format": "email", "maxLength": 320}
PASSWORD: Schema = {"type": "string", "minLength": 1, "maxLength": 1024}
ROLE: Schema = {"type": "string", "enum": list(ROLES)}
LIMIT: Schema = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_RPM}
TOKEN_LIMIT: Schema = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_TPM}
NAMES: Schema = {"type": ["array", "null"], "items": {"type": "string", "minLength": 1, "maxLength": 200},
                 "maxItems": 500, "uniqueItems": True}
SCOPES: Schema = {"type": "array", "items": {"type": "string", "enum": sorted(ALL)}, "maxItems": 64,
                  "uniqueItems": True, "description": "Narrow the role's permissions to these (empty: the whole role)."}
JSON_OBJECT: Schema = {"type": "object"}

# The policy document: the very schema `pipeline.policy.validate_policy` compiles, embedded where a route
# takes or returns a document, so the request check and the OpenAPI document cannot drift from the chain.
# The one conversion: `$schema` and `$id` are dropped. They name the standalone document; inside OpenAPI
# 3.1 the dialect is the document's `jsonSchemaDialect` (also 2020-12) and the component's name is its
# identity. Every other keyword it uses (type lists, enum, min/max, additionalProperties, uniqueItems)
# means the same in draft-07, which fastjsonschema compiles the route schema with, and in OpenAPI 3.1.
POLICY_DOCUMENT: Schema = {k: v for k, v in POLICY_SCHEMA.items() if k not in ("$schema", "$id")}

# Schemas published once under #/components/schemas and referenced wherever a route embeds them
# (by identity: a route that uses the constant itself gets a $ref, a copy would be inlined).
COMPONENT_SCHEMAS: dict[str, Schema] = {"PolicyDocument": POLICY_DOCUMENT}


def nullable(schema: Schema) -> Schema:
    t = schema.get("type")
    if isinstance(t, str):
        return {**schema, "type": [t, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), *, closed: bool = True,
        min_properties: int = 0) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": not closed}
    if required:
        schema["required"] = list(required)
    if min_properties:
        schema["minProperties"] = min_properties
    return schema


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


# ---- entities as returned ----------------------------------------------------------------------

TENANT = obj({
    "id": ID, "name": NAME, "status": {"type": "string", "enum": ["active", "suspended"]},
    "rpm": LIMIT, "tpm": TOKEN_LIMIT, "allowed_models": NAMES, "allowed_providers": NAMES,
    "policy_id": nullable(ID), "settings": JSON_OBJECT, "role": ROLE, "created_at": TS, "updated_at": TS,
}, ("id", "name", "status", "created_at"), closed=False)

USER = obj({
    "id": ID, "tenant_id": ID, "email": {"type": "string"}, "name": {"type": "string"}, "role": ROLE,
    "status": {"type": "string", "enum": ["active", "disabled"]}, "mfa_enabled": {"type": "boolean"},
    "last_login_at": nullable(TS), "created_at": TS, "updated_at": TS,
}, ("id", "tenant_id", "email", "role", "status", "mfa_enabled"), closed=False)

MEMBER = obj({"tenant_id": ID, "user_id": ID, "role": ROLE, "created_at": TS},
             ("tenant_id", "user_id", "role"), closed=False)

KEY = obj({
    "id": ID, "tenant_id": ID, "name": NAME, "prefix": {"type": "string"}, "last4": {"type": "string"},
    "masked_key": {"type": "string"}, "source": {"type": "string"},
    "status": {"type": "string", "enum": ["active", "revoked"]},
    "effective_status": {"type": "string", "enum": ["active", "expired", "revoked"]},
    "expires_at": nullable(TS), "role": ROLE, "scopes": array({"type": "string"}), "rpm": LIMIT, "tpm": TOKEN_LIMIT,
    "allowed_models": NAMES, "allowed_providers": NAMES, "budget_usd": {"type": ["number", "null"]},
    "policy_id": nullable(ID), "created_by": {"type": ["string", "null"]}, "created_at": TS,
    "revoked_by": {"type": ["string", "null"]}, "revoked_reason": {"type": ["string", "null"]},
    "revoked_at": nullable(TS), "last_used_at": nullable(TS),
    "usage": obj({"requests": {"type": "integer"}, "tokens": {"type": "integer"}, "cost_usd": {"type": "number"}},
                 ("requests", "tokens", "cost_usd")),
}, ("id", "tenant_id", "name", "masked_key", "status", "effective_status", "role", "scopes", "created_at"),
    closed=False)

POLICY = obj({
    "id": ID, "tenant_id": ID, "name": NAME, "description": {"type": "string"}, "version": {"type": "integer"},
    "document": POLICY_DOCUMENT, "created_by": {"type": ["string", "null"]}, "created_at": TS, "updated_at": TS,
}, ("id", "tenant_id", "name", "version", "document"), closed=False)

POLICY_VERSION = obj({
    "id": ID, "policy_id": ID, "version": {"type": "integer"}, "document": POLICY_DOCUMENT,
    "comment": {"type": "string"}, "created_by": {"type": ["string", "null"]}, "created_at": TS,
}, ("id", "policy_id", "version", "document"), closed=False)

MODEL_PRICE = obj({
    "name": NAME,
    "input_per_1k": {"type": "number", "minimum": 0},
    "output_per_1k": {"type": "number", "minimum": 0},
}, ("name",))

PROVIDER_KINDS = ["openai", "azure", "anthropic"]
PROVIDER = obj({
    "id": ID, "tenant_id": ID, "name": NAME, "kind": {"type": "string", "enum": PROVIDER_KINDS},
    "base_url": {"type": "string"}, "models": array(MODEL_PRICE), "settings": JSON_OBJECT,
    "status": {"type": "string", "enum": ["active", "disabled"]}, "has_credentials": {"type": "boolean"},
    "created_at": TS, "updated_at": TS,
}, ("id", "tenant_id", "name", "kind", "has_credentials"), closed=False)

KILL_SWITCH = obj({
    "id": ID, "tenant_id": nullable(ID), "scope": {"type": "string"}, "target": {"type": "string"},
    "reason": {"type": "string"}, "created_by": {"type": ["string", "null"]}, "created_at": TS,
}, ("id", "scope", "target", "reason"), closed=False)

AUDIT_EVENT = obj({
    "id": ID, "tenant_id": {"type": ["string", "null"]}, "ts": TS, "actor": {"type": "string"},
    "action": {"type": "string"}, "resource_type": {"type": "string"},
    "resource_id": {"type": ["string", "null"]}, "outcome": {"type": "string"},
    "request_id": {"type": ["string", "null"]}, "details": JSON_OBJECT,
}, ("id", "ts", "actor", "action", "outcome"), closed=False)

GATEWAY_REQUEST = obj({
    "id": {"type": "string"}, "tenant_id": ID, "key_id": {"type": ["string", "null"]},
    "model": {"type": ["string", "null"]}, "provider": {"type": ["string", "null"]}, "status": {"type": "integer"},
    "blocked": {"type": "boolean"}, "reason": {"type": ["string", "null"]},
    "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
    "total_tokens": {"type": "integer"}, "cost_usd": {"type": "number"}, "latency_ms": {"type": "number"},
    "security": JSON_OBJECT, "ts": TS,
}, ("id", "tenant_id", "status", "blocked", "ts"), closed=False)

_SUMS = {"requests": {"type": "integer"}, "tokens": {"type": "integer"}, "cost_usd": {"type": "number"},
         "blocked": {"type": "integer"}}
USAGE = obj({
    "days": {"type": "integer"}, **_SUMS,
    "by_day": array(obj({"day": {"type": "string"}, **_SUMS}, closed=False)),
    "top_models": array(obj({"model": {"type": ["string", "null"]}, **_SUMS}, closed=False)),
    "top_keys": array(obj({"key_id": {"type": ["string", "null"]}, **_SUMS}, closed=False)),
}, ("days", "requests", "tokens", "cost_usd", "blocked", "by_day", "top_models", "top_keys"), closed=False)

SESSION = obj({"id": ID, "user_id": ID, "user_agent": {"type": "string"}, "created_at": TS, "expires_at": TS},
              ("id", "user_id", "created_at", "expires_at"), closed=False)

TOKENS = obj({
    "access_token": {"type": "string"}, "token_type": {"type": "string", "enum": ["Bearer"]},
    "expires_in": {"type": "integer"}, "refresh_token": {"type": "string"},
    "refresh_expires_in": {"type": "integer"}, "tenant_id": ID, "role": ROLE,
    "permissions": array({"type": "string"}), "user": USER,
}, ("access_token", "token_type", "expires_in", "refresh_token", "tenant_id", "role", "permissions"),
    closed=False)

EMPTY: Schema = obj({})
