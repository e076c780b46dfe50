"""RequestContext: everything one request carries through the chain (slots, no dict soup)."""
from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter, time
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping

from pipeline.errors import StageError
from pipeline.policy import EffectivePolicy

if TYPE_CHECKING:
    from pipeline.ratelimit import Scope


@dataclass(slots=True)
class Principal:
    """Who is calling: resolved by the authenticate stage."""

    tenant_id: str
    tenant_name: str
    subject: str                       # key id, user id or agent id
    kind: str                          # api_key | user | agent
    role: str
    permissions: frozenset[str]
    key_prefix: str | None = None
    rpm: int | None = None             # key limit (None: tenant's, then platform default)
    tpm: int | None = None
    tenant_rpm: int | None = None
    tenant_tpm: int | None = None
    allowed_models: frozenset[str] | None = None
    allowed_providers: frozenset[str] | None = None
    policy_ids: tuple[str, ...] = ()   # tenant policy, key policy (lowest first)
    # the rate-limit scopes of this principal, built once (principals are cached per directory generation)
    limit_scopes: dict[tuple[str, int, int], tuple[Scope, Scope]] = field(
        default_factory=dict, compare=False, repr=False)


@dataclass(slots=True)
class SecurityReport:
    """Detector results, shown in the `security` block, X-Casemate-* headers and the audit event."""

    injection_score: float = 0.0
    injection_categories: tuple[str, ...] = ()
    injection_rules: tuple[str, ...] = ()
    pii_detected: list[str] = field(default_factory=list)       # entity types found in the prompt
    pii_count: int = 0
    secrets_detected: list[str] = field(default_factory=list)   # secret types, never values
    identifiers_detected: list[str] = field(default_factory=list)  # infrastructure identifier types (ARNs, buckets)
    output_findings: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)         # policy violations (reason codes)
    flags: list[str] = field(default_factory=list)              # flagged / shadowed findings
    actions: list[str] = field(default_factory=list)            # e.g. "pii:tokenize", "secrets:redact"

    def as_dict(self, pipeline_ms: float) -> dict[str, Any]:
        return {
            "injection_score": round(self.injection_score, 4),
            "injection_categories": list(self.injection_categories),
            "pii_detected": self.pii_detected,
            "pii_count": self.pii_count,
            "secrets_detected": self.secrets_detected,
            "identifiers_detected": self.identifiers_detected,
            "output_findings": self.output_findings,
            "policy_violations": self.violations,
            "flags": self.flags,
            "actions": self.actions,
            "pipeline_latency_ms": round(pipeline_ms, 3),
        }


class RequestContext:
    """One request's state. Stages read and write these attributes; nothing else."""

    __slots__ = (
        "request_id", "route", "path", "method", "headers", "remote", "started", "ts",
        "raw_body", "body", "model", "upstream_model", "provider", "stream", "principal", "policy",
        "security", "response", "stream_iter", "response_headers", "cache_key", "cache_hit",
        "prompt_tokens", "completion_tokens", "estimated_tokens", "cost_usd", "upstream_ms",
        "pipeline_ms", "error", "status", "vault", "canary", "system_prompt", "extras",
        "rl_state", "outcome", "upstream_route", "upstream_router",
    )

    def __init__(self, route: str, method: str, path: str, headers: Mapping[str, str],
                 raw_body: bytes, remote: str | None = None) -> None:
        self.request_id: str = ""
        self.route = route                      # chat | embeddings | gateway_chat | models
        self.method = method
        self.path = path
        self.headers = headers
        self.remote = remote
        self.started = perf_counter()
        self.ts = time()
        self.raw_body = raw_body
        self.body: dict[str, Any] | None = None
        self.model: str | None = None
        self.upstream_model: str | None = None
        self.provider: str | None = None
        self.stream = False
        self.principal: Principal | None = None
        self.policy: EffectivePolicy | None = None
        self.security = SecurityReport()
        self.response: dict[str, Any] | None = None
        self.stream_iter: AsyncIterator[list[dict[str, Any]]] | None = None   # batches of chunks
        self.response_headers: dict[str, str] = {}
        self.cache_key: str | None = None
        self.cache_hit = False
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.estimated_tokens = 0
        self.cost_usd = 0.0
        self.upstream_ms = 0.0
        self.pipeline_ms = 0.0
        self.error: StageError | None = None
        self.status = 200
        self.vault: Any = None                  # detectors' TokenVault when tokenising PII
        self.canary: str | None = None
        self.system_prompt: str | None = None
        self.extras: dict[str, Any] = {}
        self.rl_state: Any = None               # rate-limit result for X-RateLimit-* headers
        self.outcome = "ok"                     # ok | blocked | error | interrupted
        self.upstream_route: Any = None         # the router's Route, resolved by the policy stage
        self.upstream_router: Any = None        # the router (platform's or the tenant's) that serves it
