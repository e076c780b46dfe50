"""The `tool_rules` section of the policy document, and its compiled form.

Shape (every key optional; platform defaults below fill the gaps; `agents.<id>` overrides the
tenant/key rules for one agent, deep-merged)::

    tool_rules:
      enabled: true
      risk_actions: {LOW: allow, MEDIUM: allow, HIGH: pending, CRITICAL: block}
      unknown_tools: allow              # action for tools not listed under `tools` (allow | pending | block)
      templates: [sql-readonly, no-shell, no-pii-egress, http-allowlist]
      http_allowlist: ["api.example.com", "*.github.com"]
      review: {timeout_s: 300, timeout_decision: block}
      taint: {enabled: true, window: 5}
      anomaly: {enabled: true, threshold: 0.8, min_samples: 30}
      tools:
        run_sql: {category: database, schema: {...JSON Schema of the arguments...}, action: pending,
                  min_risk: MEDIUM}
      agents:
        billing-bot: {templates: [payments-review], tools: {...}}

Templates (each adds refusals on top of the risk map):
    sql-readonly       database calls that write (INSERT/UPDATE/DELETE/DDL/GRANT) are blocked
    no-shell           shell tools are blocked
    no-code-execution  code-execution tools are blocked
    no-pii-egress      PII in arguments of http/email tools is blocked
    no-secret-egress   credentials in arguments of http/email tools are blocked
    http-allowlist     http calls to hosts outside `http_allowlist` are blocked
    fs-readonly        filesystem tools that write, move or delete are blocked
    payments-review    every payment call waits for a human (pending)

The decision is the strictest of the risk map's action, the tool's fixed `action`, the
templates' refusals and `unknown_tools` (block > pending > allow).
"""
from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import fastjsonschema

RISK_LEVELS = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
ACTIONS = ("allow", "pending", "block")
TEMPLATES = ("sql-readonly", "no-shell", "no-code-execution", "no-pii-egress", "no-secret-egress",
             "http-allowlist", "fs-readonly", "payments-review")
TOOL_CATEGORIES = ("database", "shell", "filesystem", "http", "email", "payment", "code_execution", "other")

_action = {"enum": list(ACTIONS)}
_risk = {"enum": list(RISK_LEVELS)}
_TOOL = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "category": {"enum": list(TOOL_CATEGORIES)},
        "action": {**_action, "description": "Fixed action for this tool (the strictest action wins)."},
        "min_risk": {**_risk, "description": "The call's risk is at least this level."},
        "schema": {"type": "object", "description": "JSON Schema the arguments must satisfy (else block)."},
        "description": {"type": "string", "maxLength": 2000},
    },
}
_RULES_PROPERTIES: dict[str, Any] = {
    "enabled": {"type": "boolean"},
    "risk_actions": {"type": "object", "additionalProperties": False,
                     "properties": {lvl: _action for lvl in RISK_LEVELS}},
    "unknown_tools": _action,
    "templates": {"type": "array", "items": {"enum": list(TEMPLATES)}, "uniqueItems": True},
    "http_allowlist": {"type": "array", "maxItems": 1000,
                       "items": {"type": "string", "minLength": 1, "maxLength": 253}},
    "review": {"type": "object", "additionalProperties": False,
               "properties": {"timeout_s": {"type": "integer", "minimum": 1, "maximum": 7 * 86400},
                              "timeout_decision": {"enum": ["allow", "block"]}}},
    "taint": {"type": "object", "additionalProperties": False,
              "properties": {"enabled": {"type": "boolean"},
                             "window": {"type": "integer", "minimum": 1, "maximum": 50}}},
    "anomaly": {"type": "object", "additionalProperties": False,
                "properties": {"enabled": {"type": "boolean"},
                               "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                               "min_samples": {"type": "integer", "minimum": 1, "maximum": 100000}}},
    "tools": {"type": "object", "maxProperties": 1000, "additionalProperties": _TOOL,
              "description": "Tool name (or glob, e.g. `db_*`) -> rule."},
}
TOOL_RULES_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "Agent tool-call rules for POST /api/v1/check and the MCP firewall.",
    "properties": {
        **_RULES_PROPERTIES,
        "agents": {"type": "object", "maxProperties": 1000,
                   "additionalProperties": {"type": "object", "additionalProperties": False,
                                            "properties": _RULES_PROPERTIES},
                   "description": "agent_id -> rules overriding the ones above for that agent."},
    },
}

PLATFORM_TOOL_RULES: dict[str, Any] = {
    "enabled": True,
    "risk_actions": {"LOW": "allow", "MEDIUM": "allow", "HIGH": "pending", "CRITICAL": "block"},
    "unknown_tools": "allow",
    "templates": ["no-secret-egress"],
    "http_allowlist": [],
    "review": {"timeout_s": 300, "timeout_decision": "block"},
    "taint": {"enabled": True, "window": 5},
    "anomaly": {"enabled": True, "threshold": 0.8, "min_samples": 30},
    "tools": {},
}


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and k != "schema":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass(frozen=True, slots=True)
class ToolRule:
    pattern: str
    category: str | None
    action: str | None
    min_risk: int
    validate: Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class CompiledRules:
    """Everything one decision needs, precomputed: lookups only on the hot path."""

    enabled: bool
    risk_actions: tuple[str, str, str, str]
    unknown_tools: str
    templates: frozenset[str]
    allow_hosts: frozenset[str]
    allow_suffixes: tuple[str, ...]
    review_timeout_s: int
    timeout_decision: str
    taint_enabled: bool
    taint_window: int
    anomaly_enabled: bool
    anomaly_threshold: float
    anomaly_min_samples: int
    exact: Mapping[str, ToolRule]
    globs: tuple[ToolRule, ...]

    def tool(self, name: str) -> ToolRule | None:
        rule = self.exact.get(name)
        if rule is not None:
            return rule
        for g in self.globs:
            if fnmatch.fnmatchcase(name, g.pattern):
                return g
        return None

    def host_allowed(self, host: str) -> bool:
        return host in self.allow_hosts or host.endswith(self.allow_suffixes)


def _refuse_all(_arguments: Any) -> Any:
    raise ValueError("the tool's argument schema in the policy is not a valid JSON Schema")


def _compile_tool(pattern: str, raw: Mapping[str, Any]) -> ToolRule:
    schema = raw.get("schema")
    validate: Callable[[Any], Any] | None = None
    if schema is not None:
        try:
            validate = fastjsonschema.compile(schema)
        except fastjsonschema.JsonSchemaDefinitionException:
            validate = _refuse_all                  # fail closed: a broken schema never widens access
    return ToolRule(
        pattern=pattern, category=raw.get("category"), action=raw.get("action"),
        min_risk=RISK_LEVELS.index(raw["min_risk"]) if raw.get("min_risk") else 0, validate=validate,
    )


def compile_rules(doc: Mapping[str, Any]) -> CompiledRules:
    """Compile one merged rule document (platform defaults are applied here)."""
    d = _merge(PLATFORM_TOOL_RULES, {k: v for k, v in doc.items() if k != "agents"})
    tools = {p: _compile_tool(p, r) for p, r in (d.get("tools") or {}).items()}
    hosts = [h.lower().rstrip(".") for h in d["http_allowlist"]]
    ra = d["risk_actions"]
    return CompiledRules(
        enabled=bool(d["enabled"]),
        risk_actions=(ra["LOW"], ra["MEDIUM"], ra["HIGH"], ra["CRITICAL"]),
        unknown_tools=d["unknown_tools"],
        templates=frozenset(d["templates"]),
        allow_hosts=frozenset(h for h in hosts if not h.startswith("*.")),
        allow_suffixes=tuple(h[1:] for h in hosts if h.startswith("*.")),
        review_timeout_s=int(d["review"]["timeout_s"]),
        timeout_decision=d["review"]["timeout_decision"],
        taint_enabled=bool(d["taint"]["enabled"]),
        taint_window=int(d["taint"]["window"]),
        anomaly_enabled=bool(d["anomaly"]["enabled"]),
        anomaly_threshold=float(d["anomaly"]["threshold"]),
        anomaly_min_samples=int(d["anomaly"]["min_samples"]),
        exact={p: r for p, r in tools.items() if not any(c in p for c in "*?[")},
        globs=tuple(r for p, r in tools.items() if any(c in p for c in "*?[")),
    )


class RulesCache:
    """Compiled rules per (policy fingerprint, agent): compiled on first use after a change."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._cache: dict[tuple[str, str | None], CompiledRules] = {}
        self._max = max_entries

    def get(self, fingerprint: str, doc: Mapping[str, Any], agent_id: str | None) -> CompiledRules:
        agents = doc.get("agents") or {}
        key = (fingerprint, agent_id if agent_id in agents else None)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        merged = doc if key[1] is None else _merge({k: v for k, v in doc.items() if k != "agents"}, agents[key[1]])
        rules = compile_rules(merged)
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[key] = rules
        return rules
