"""The tool-call decision: classification, signals -> risk -> action, under the caller's policy.

`CheckEngine.evaluate(rules, request)` is synchronous and I/O-free: the rules are compiled
(see `rules.py`), the signal database is precompiled (`detectors.toolcall`), and the only
per-call work is scanning the flattened arguments.

Risk levels are LOW < MEDIUM < HIGH < CRITICAL. A call starts at its category's base level
(payment, shell, code execution: MEDIUM; others LOW), each signal raises it to the signal's
level in that category (`signal_risk`), a tool rule's `min_risk` is a floor, taint raises it one
level (at least HIGH), an anomaly score over the threshold raises it to at least MEDIUM.
"""
from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from detectors.toolcall import ToolCallScanner, classify, flatten_arguments
from pipeline.checks.anomaly import Baselines
from pipeline.checks.rules import RISK_LEVELS, CompiledRules

LOW, MEDIUM, HIGH, CRITICAL = range(4)
_STRICTNESS = {"allow": 0, "pending": 1, "block": 2}
_BASE_RISK = {"payment": MEDIUM, "shell": MEDIUM, "code_execution": MEDIUM}
_CONSEQUENTIAL = frozenset({"payment", "email", "shell", "code_execution"})
_DESTRUCTIVE = frozenset({"sql_destructive", "sql_unbounded_write", "shell_destructive"})
_DELETE_WORDS = ("delete", "remove", "drop", "destroy", "purge", "wipe", "erase")
_EGRESS = frozenset({"http", "email"})
_FS_WRITE_WORDS = ("write", "delete", "remove", "move", "rename", "create", "append", "overwrite", "chmod",
                   "mkdir", "rmdir", "unlink", "upload", "put", "save", "edit")
_TRUSTED_ORIGINS = frozenset({"user", "system", "internal", "trusted", "developer"})
# Addressing fields of outbound calls: a recipient or URL is where data goes, not data leaving.
_ADDRESS_KEYS = frozenset({"to", "cc", "bcc", "from", "sender", "recipient", "recipients", "reply_to", "url", "uri",
                           "endpoint", "href", "host", "method", "channel", "channel_id", "thread_ts", "headers"})
# PII types that mean personal data is leaving (URL, IP, dates and places are too common to count).
_EGRESS_PII = frozenset({"EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "US_BANK_NUMBER",
                         "US_PASSPORT", "US_DRIVER_LICENSE", "US_ITIN", "UK_NHS", "UK_NINO", "MEDICAL_LICENSE",
                         "CRYPTO", "ES_NIF", "IT_FISCAL_CODE", "SG_NRIC_FIN", "AU_TFN", "IN_PAN", "IN_AADHAAR"})

_SIGNAL_RISK: dict[str, int] = {
    "sql_injection": HIGH, "sql_destructive": CRITICAL, "sql_unbounded_write": CRITICAL, "sql_privilege": HIGH,
    "sql_write": LOW, "shell_destructive": CRITICAL, "shell_remote_exec": CRITICAL, "shell_reverse": CRITICAL,
    "privilege_escalation": HIGH, "path_traversal": HIGH, "sensitive_path": HIGH, "ssrf_metadata": CRITICAL,
    "ssrf_internal": HIGH, "ssrf_scheme": HIGH, "dns_rebinding": HIGH, "secret_egress": CRITICAL,
    "pii_egress": HIGH, "prompt_injection": HIGH, "shell_metachar": LOW,
}
_REASONS: dict[str, str] = {
    "sql_injection": "SQL injection pattern in the arguments",
    "sql_destructive": "destructive SQL (DROP / TRUNCATE)",
    "sql_unbounded_write": "DELETE or UPDATE without WHERE",
    "sql_privilege": "SQL privilege change (GRANT / REVOKE / CREATE USER)",
    "sql_write": "SQL write statement",
    "shell_metachar": "shell command separators or substitutions in the arguments",
    "shell_destructive": "destructive shell command",
    "shell_remote_exec": "downloads and executes remote code",
    "shell_reverse": "reverse shell",
    "privilege_escalation": "privilege escalation",
    "path_traversal": "path traversal",
    "sensitive_path": "sensitive file path",
    "ssrf_metadata": "cloud metadata endpoint",
    "ssrf_internal": "internal or loopback network target",
    "ssrf_scheme": "non-HTTP URL scheme (file://, gopher://, ...)",
    "dns_rebinding": "DNS-rebinding style or numeric host",
    "secret_egress": "credentials in an outbound call",
    "pii_egress": "personal data in an outbound call",
    "prompt_injection": "prompt injection inside the arguments",
    "tainted_context": "follows untrusted tool output carrying prompt injection",
    "anomalous": "unusual behaviour for this agent",
}


# Every PII type counted for egress carries an '@' or a run of digits (with separators): texts without
# either skip the (comparatively costly) PII recognizers.
_PII_HINT = re.compile(r"@|\d[\d \t().\-/]{5,}\d")
# The injection model reads prose: a text needs some length and words to be worth scoring.
_MIN_PROSE_CHARS = 24
_MIN_PROSE_SPACES = 3


def _prose(text: str) -> bool:
    return len(text) >= _MIN_PROSE_CHARS and text.count(" ", 0, 400) >= _MIN_PROSE_SPACES


def signal_risk(signal: str, category: str) -> int:
    """The risk level one signal implies for a tool of `category`."""
    if signal == "shell_metachar":
        return HIGH if category == "filesystem" else MEDIUM if category in ("other", "database") else LOW
    if signal == "sql_write":
        return MEDIUM if category == "database" else LOW
    return _SIGNAL_RISK.get(signal, MEDIUM)


def _payload_text(arguments: Any, text: str) -> str:
    """The argument text without addressing fields (recipients, URLs, channels)."""
    if not isinstance(arguments, Mapping) or not _ADDRESS_KEYS.intersection(arguments):
        return text
    return flatten_arguments({k: v for k, v in arguments.items() if k not in _ADDRESS_KEYS})[0]


class InjectionScanner(Protocol):
    thresholds: Mapping[str, float]

    def scan(self, text: str, role: str = ...) -> Any: ...


class TextScanner(Protocol):
    def scan(self, text: str) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class CheckRequest:
    tenant_id: str
    agent_id: str
    tool_name: str
    arguments: Any
    session_id: str | None = None
    context: Mapping[str, Any] | None = None


@dataclass(slots=True)
class Verdict:
    decision: str                         # allow | pending | block
    risk: int
    category: str
    signals: list[str]
    reasons: list[str]
    anomaly_score: float
    anomaly_components: dict[str, float] = field(default_factory=dict)
    timeout_s: int = 300
    timeout_decision: str = "block"

    @property
    def risk_level(self) -> str:
        return RISK_LEVELS[self.risk]


class SessionTaint:
    """Sessions whose latest tool output carried injection (fed by the MCP firewall), with a TTL."""

    def __init__(self, ttl_s: float = 900.0, max_entries: int = 100_000) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._d: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()

    def mark(self, tenant_id: str, session_id: str, source: str) -> None:
        self._d[(tenant_id, session_id)] = (time.monotonic() + self._ttl, source)
        self._d.move_to_end((tenant_id, session_id))
        if len(self._d) > self._max:
            self._d.popitem(last=False)

    def clear(self, tenant_id: str, session_id: str) -> None:
        self._d.pop((tenant_id, session_id), None)

    def get(self, tenant_id: str, session_id: str) -> str | None:
        hit = self._d.get((tenant_id, session_id))
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._d[(tenant_id, session_id)]
            return None
        return hit[1]


class CheckEngine:
    """Decides one tool call. Build once per worker; use from the event-loop thread."""

    def __init__(self, *, injection: InjectionScanner | None = None, secrets: TextScanner | None = None,
                 pii: TextScanner | None = None, baselines: Baselines | None = None,
                 scanner: ToolCallScanner | None = None) -> None:
        self.scanner = scanner or ToolCallScanner()
        self.injection = injection
        self.secrets = secrets
        self.pii = pii
        self.baselines = baselines or Baselines()
        self.taint = SessionTaint()
        self._categories: dict[str, str] = {}

    def category(self, rules: CompiledRules, tool_name: str, keys: Sequence[str]) -> str:
        rule = rules.tool(tool_name)
        if rule is not None and rule.category:
            return rule.category
        cat = self._categories.get(tool_name)
        if cat is None:
            cat = classify(tool_name)
            if len(self._categories) < 10_000:
                self._categories[tool_name] = cat
        return classify(tool_name, keys) if cat == "other" else cat

    def injected(self, text: str) -> bool:
        """True when `text` (a tool output or argument) carries prompt injection."""
        if self.injection is None or not _prose(text):
            return False
        return bool(self.injection.scan(text[:16384], "tool").flagged)

    def evaluate(self, rules: CompiledRules, req: CheckRequest, *, now: float | None = None) -> Verdict:
        text, keys = flatten_arguments(req.arguments)
        category = self.category(rules, req.tool_name, keys)
        found = self.scanner.scan(text)
        signals = set(found.signals)
        if category in _EGRESS and text:
            payload = _payload_text(req.arguments, text)
            # credentials only: an infrastructure identifier (a bucket URL, an ARN) is not a secret leaving
            if self.secrets is not None and any(f.kind == "credential" for f in self.secrets.scan(payload)):
                signals.add("secret_egress")
            if self.pii is not None and _PII_HINT.search(payload) and any(
                    f.entity_type in _EGRESS_PII for f in self.pii.scan(payload)):
                signals.add("pii_egress")
        if category != "database" and self.injected(text):     # SQL is code: its injection signals cover it
            signals.add("prompt_injection")
        risk = _BASE_RISK.get(category, LOW)
        for s in signals:
            r = signal_risk(s, category)
            if r > risk:
                risk = r
        rule = rules.tool(req.tool_name)
        reasons = [_REASONS.get(s, s) for s in sorted(signals) if signal_risk(s, category) > LOW]
        actions: list[str] = []
        if rule is not None:
            risk = max(risk, rule.min_risk)
            if rule.action:
                actions.append(rule.action)
                if rule.action != "allow":
                    reasons.append(f"tool rule: {rule.action}")
            if rule.validate is not None:
                try:
                    rule.validate(req.arguments)
                except Exception as exc:  # noqa: BLE001 - fastjsonschema's JsonSchemaException family
                    signals.add("schema_violation")
                    actions.append("block")
                    reasons.append(f"arguments break the tool's schema: {getattr(exc, 'message', str(exc))}")
        elif rules.unknown_tools != "allow":
            actions.append(rules.unknown_tools)
            reasons.append(f"tool not listed in the policy: {rules.unknown_tools}")
        if rules.taint_enabled:
            source = self._tainted(rules, req)
            if source is not None and (category in _CONSEQUENTIAL or signals & _DESTRUCTIVE
                                       or any(w in req.tool_name.lower() for w in _DELETE_WORDS)):
                signals.add("tainted_context")
                risk = max(min(risk + 1, CRITICAL), HIGH)
                reasons.append(f"{_REASONS['tainted_context']} ({source})")
        self._templates(rules, category, req.tool_name, signals, found.hosts, actions, reasons)
        anomaly_score, comps = 0.0, {}
        if rules.anomaly_enabled:
            t = time.time() if now is None else now
            hour = int(t // 3600 % 24)
            a = self.baselines.score(req.tenant_id, req.agent_id, req.tool_name, len(text), hour,
                                     rules.anomaly_min_samples)
            anomaly_score, comps = a.score, a.components
            if anomaly_score >= rules.anomaly_threshold:
                signals.add("anomalous")
                risk = max(risk, MEDIUM)
                reasons.append(f"{_REASONS['anomalous']} (score {anomaly_score:.2f})")
        actions.append(rules.risk_actions[risk])
        decision = max(actions, key=_STRICTNESS.__getitem__) if rules.enabled else "allow"
        if rules.anomaly_enabled:
            self.baselines.observe(req.tenant_id, req.agent_id, req.tool_name, len(text),
                                   int((time.time() if now is None else now) // 3600 % 24), decision == "block")
        return Verdict(decision=decision, risk=risk, category=category, signals=sorted(signals), reasons=reasons,
                       anomaly_score=anomaly_score, anomaly_components=comps, timeout_s=rules.review_timeout_s,
                       timeout_decision=rules.timeout_decision)

    def _tainted(self, rules: CompiledRules, req: CheckRequest) -> str | None:
        if req.session_id:
            src = self.taint.get(req.tenant_id, req.session_id)
            if src is not None:
                return src
        ctx = req.context
        if not ctx:
            return None
        outputs = ctx.get("recent_outputs")
        if not isinstance(outputs, list):
            return None
        for item in outputs[-rules.taint_window:]:
            if not isinstance(item, Mapping):
                continue
            if str(item.get("origin", "untrusted")).lower() in _TRUSTED_ORIGINS:
                continue
            content = item.get("content")
            text = content if isinstance(content, str) else flatten_arguments(content)[0]
            if self.injected(text):
                return f"output of {item.get('tool') or 'a tool'}"
        return None

    @staticmethod
    def _templates(rules: CompiledRules, category: str, tool: str, signals: set[str], hosts: Sequence[str],
                   actions: list[str], reasons: list[str]) -> None:
        t = rules.templates
        if not t:
            return

        def refuse(template: str, why: str, action: str = "block") -> None:
            actions.append(action)
            reasons.append(f"template {template}: {why}")

        if "sql-readonly" in t and category == "database" and signals & {
                "sql_write", "sql_destructive", "sql_unbounded_write", "sql_privilege"}:
            refuse("sql-readonly", "database writes are not allowed")
        if "no-shell" in t and category == "shell":
            refuse("no-shell", "shell tools are not allowed")
        if "no-code-execution" in t and category == "code_execution":
            refuse("no-code-execution", "code execution is not allowed")
        if "no-pii-egress" in t and "pii_egress" in signals:
            refuse("no-pii-egress", "personal data may not leave through this tool")
        if "no-secret-egress" in t and "secret_egress" in signals:
            refuse("no-secret-egress", "credentials may not leave through this tool")
        if "http-allowlist" in t and category == "http":
            outside = [h for h in hosts if not rules.host_allowed(h)]
            if outside:
                refuse("http-allowlist", f"host {outside[0]} is not on the allow-list")
        if "fs-readonly" in t and category == "filesystem" and any(w in tool.lower() for w in _FS_WRITE_WORDS):
            refuse("fs-readonly", "filesystem writes are not allowed")
        if "payments-review" in t and category == "payment":
            refuse("payments-review", "payments wait for a human", "pending")
