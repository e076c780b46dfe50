"""The policy document: one JSON Schema that drives the chain.

Layering: platform defaults (built in, then the config file's `policy:`) < tenant
policy < key policy, deep-merged. The merged document is compiled once into an
immutable `EffectivePolicy`; the hot path only reads its precomputed fields.
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import fastjsonschema
import orjson

from pipeline.checks.rules import TOOL_RULES_SCHEMA

ACTIONS_DETECT = ["block", "redact", "flag", "shadow"]
PII_OPERATORS = ["redact", "mask", "hash", "placeholder", "tokenize", "block"]
ROLES = ["system", "user", "assistant", "tool"]

_threshold = {"type": "number", "minimum": 0, "maximum": 1}
_str_list_or_null = {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}, "uniqueItems": True}

POLICY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://casemate.dev/schemas/policy.json",
    "title": "Casemate policy document",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string", "maxLength": 2000},
        "models": {
            "type": "object", "additionalProperties": False,
            "description": "Model allow/deny lists. `allow: null` allows every model.",
            "properties": {"allow": _str_list_or_null, "deny": _str_list_or_null},
        },
        "providers": {
            "type": "object", "additionalProperties": False,
            "properties": {"allow": _str_list_or_null},
        },
        "max_tokens": {"type": ["integer", "null"], "minimum": 1,
                       "description": "Cap on max_tokens / max_completion_tokens; larger requests are refused (422)."},
        "max_messages": {"type": ["integer", "null"], "minimum": 1},
        "cache": {
            "type": "object", "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"}, "ttl_s": {"type": "integer", "minimum": 1, "maximum": 86400 * 30}},
        },
        "rate_limit": {
            "type": "object", "additionalProperties": False,
            "properties": {"rpm": {"type": ["integer", "null"], "minimum": 1}, "tpm": {"type": ["integer", "null"], "minimum": 1}},
        },
        "injection": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "action": {"enum": ["block", "flag", "shadow"]},
                "thresholds": {"type": "object", "additionalProperties": False,
                               "properties": {r: _threshold for r in ROLES}},
            },
        },
        "pii": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "action": {"enum": ACTIONS_DETECT},
                "default_operator": {"enum": PII_OPERATORS},
                "entities": {"type": "object", "additionalProperties": {"enum": PII_OPERATORS},
                             "description": "Entity type -> operator; only listed types are acted on when non-empty."},
                "score_threshold": _threshold,
            },
        },
        "secrets": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "action": {"enum": ACTIONS_DETECT, "description": "What to do with credentials (keys, tokens, passwords)."},
                "identifiers_action": {
                    "enum": [*ACTIONS_DETECT, "off"],
                    "description": "What to do with infrastructure identifiers that are not credentials (AWS ARNs and "
                                   "account IDs, S3 / GCS bucket endpoints, Azure storage accounts, Shopify store "
                                   "domains): flag (default: audit and metrics, the request unchanged), shadow, "
                                   "redact, block, or off. In responses a block here still needs output.action block."},
            },
        },
        "output": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "action": {"enum": ["block", "flag", "shadow"]},
                "pii": {"type": "boolean"},
                "secrets": {"type": "boolean"},
                "system_prompt_leak": {"type": "boolean"},
                "canary": {"type": "boolean"},
                "stream_holdback_chars": {
                    "type": "integer", "minimum": 0, "maximum": 4096,
                    "description": "With action block: streamed text is released this many characters behind "
                                   "the scanner (and behind any unsettled candidate), so a blocked finding is "
                                   "never delivered. 0 releases at once; a block then only cuts the stream."},
            },
        },
        "tool_rules": TOOL_RULES_SCHEMA,
    },
}

PLATFORM_DEFAULTS: dict[str, Any] = {
    "models": {"allow": None, "deny": []},
    "providers": {"allow": None},
    "max_tokens": None,
    "max_messages": None,
    "cache": {"enabled": True, "ttl_s": 300},
    "rate_limit": {"rpm": None, "tpm": None},
    "injection": {"enabled": True, "action": "block",
                  "thresholds": {"system": 0.9, "user": 0.5, "assistant": 0.8, "tool": 0.5}},
    "pii": {"enabled": True, "action": "redact", "default_operator": "tokenize", "entities": {},
            "score_threshold": 0.4},
    "secrets": {"enabled": True, "action": "block", "identifiers_action": "flag"},
    "output": {"enabled": True, "action": "block", "pii": False, "secrets": True,
               "system_prompt_leak": True, "canary": True, "stream_holdback_chars": 64},
    "tool_rules": {},
}

_validator = fastjsonschema.compile(POLICY_SCHEMA)


def validate_policy(doc: Any) -> list[str]:
    """Return a list of readable validation errors (empty when valid)."""
    try:
        _validator(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        path = exc.name.replace("data.", "", 1) if exc.name.startswith("data.") else exc.name
        return [f"{path}: {exc.message.replace(exc.name + ' ', '')}"]
    return []


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and k != "entities":
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """A merged, validated policy with everything the hot path needs precomputed."""

    name: str
    fingerprint: str                         # stable hash of the merged document
    document: Mapping[str, Any]
    allowed_models: frozenset[str] | None
    denied_models: frozenset[str]
    allowed_providers: frozenset[str] | None
    max_tokens: int | None
    max_messages: int | None
    cache_enabled: bool
    cache_ttl_s: int
    rpm: int | None
    tpm: int | None
    injection_enabled: bool
    injection_action: str
    injection_thresholds: Mapping[str, float]
    pii_enabled: bool
    pii_action: str
    pii_default_operator: str
    pii_entities: Mapping[str, str]
    pii_score_threshold: float
    secrets_enabled: bool
    secrets_action: str
    secrets_identifiers_action: str          # infrastructure identifiers: flag | shadow | redact | block | off
    output_enabled: bool
    output_action: str
    output_pii: bool
    output_secrets: bool
    output_system_prompt_leak: bool
    output_canary: bool
    output_stream_holdback: int
    shape: tuple[str, ...]                   # enabled optional stages, the chain-compiler key


def compile_policy(*layers: Mapping[str, Any] | None, name: str = "platform-default") -> EffectivePolicy:
    """Merge PLATFORM_DEFAULTS with the given layers (lowest first) and precompute."""
    doc: dict[str, Any] = copy.deepcopy(PLATFORM_DEFAULTS)
    for layer in layers:
        if layer:
            doc = deep_merge(doc, layer)
    errors = validate_policy(doc)
    if errors:
        raise ValueError(f"invalid policy {name!r}: {errors[0]}")
    inj, pii, sec, out, cache = doc["injection"], doc["pii"], doc["secrets"], doc["output"], doc["cache"]
    shape: list[str] = []
    if inj["enabled"]:
        shape.append("injection_scan")
    if pii["enabled"]:
        shape.append("pii_redact")
    if sec["enabled"]:
        shape.append("secrets_scan")
    if cache["enabled"]:
        shape += ["cache_lookup", "cache_store"]
    if out["enabled"] and (out["pii"] or out["secrets"] or out["system_prompt_leak"] or out["canary"]):
        shape.append("output_scan")
    allow = doc["models"].get("allow")
    pallow = doc["providers"].get("allow")
    return EffectivePolicy(
        name=name,
        fingerprint=hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16],
        document=doc,
        allowed_models=frozenset(allow) if allow is not None else None,
        denied_models=frozenset(doc["models"].get("deny") or ()),
        allowed_providers=frozenset(pallow) if pallow is not None else None,
        max_tokens=doc.get("max_tokens"),
        max_messages=doc.get("max_messages"),
        cache_enabled=cache["enabled"],
        cache_ttl_s=cache.get("ttl_s", 300),
        rpm=doc["rate_limit"].get("rpm"),
        tpm=doc["rate_limit"].get("tpm"),
        injection_enabled=inj["enabled"],
        injection_action=inj["action"],
        injection_thresholds=dict(inj["thresholds"]),
        pii_enabled=pii["enabled"],
        pii_action=pii["action"],
        pii_default_operator=pii["default_operator"],
        pii_entities=dict(pii.get("entities") or {}),
        pii_score_threshold=pii.get("score_threshold", 0.5),
        secrets_enabled=sec["enabled"],
        secrets_action=sec["action"],
        secrets_identifiers_action=sec.get("identifiers_action", "flag"),
        output_enabled=out["enabled"],
        output_action=out["action"],
        output_pii=out["pii"],
        output_secrets=out["secrets"],
        output_system_prompt_leak=out["system_prompt_leak"],
        output_canary=out["canary"],
        output_stream_holdback=out.get("stream_holdback_chars", 64) if out["action"] == "block" else 0,
        shape=tuple(shape),
    )
