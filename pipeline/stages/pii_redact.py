"""Stage 8: PII detection with per-entity operators (redact, mask, hash, placeholder,
reversible tokenisation restored in the response, block), or flag / shadow."""
from __future__ import annotations

import logging
from typing import Any, Callable

from pipeline.context import RequestContext
from pipeline.errors import PolicyViolation
from pipeline.stages.messages import request_slots

log = logging.getLogger("casemate.detect")
Count = Callable[[str, str, str], None]


class PiiRedactStage:
    name = "pii_redact"
    phase = "tail"
    optional = True
    slot = "pre_cache"

    def __init__(self, detector: Any, apply: Callable[..., Any], vault_factory: Callable[[], Any],
                 hmac_key: bytes, count: Count) -> None:
        self._det = detector
        self._apply = apply
        self._vault_factory = vault_factory
        self._key = hmac_key
        self._count = count
        self._ops_cache: dict[str, dict[str, str]] = {}

    def _operators(self, pol: Any) -> dict[str, str]:
        ops = self._ops_cache.get(pol.fingerprint)
        if ops is None:
            ops = dict(pol.pii_entities)
            ops["*"] = pol.pii_default_operator
            self._ops_cache[pol.fingerprint] = ops
        return ops

    def __call__(self, ctx: RequestContext) -> None:
        pol = ctx.policy
        assert pol is not None
        action = pol.pii_action
        only = pol.pii_entities if pol.pii_entities else None
        threshold = pol.pii_score_threshold
        sec = ctx.security
        vault = None
        ops = None
        for slot in request_slots(ctx.body, ctx.route):
            findings = [f for f in self._det.scan(slot.text)
                        if f.score >= threshold and (only is None or f.entity_type in only)]
            if not findings:
                continue
            types = sorted({f.entity_type for f in findings})
            sec.pii_detected.extend(t for t in types if t not in sec.pii_detected)
            sec.pii_count += len(findings)
            if action == "block":
                for t in types:
                    self._count("pii", t, "block")
                sec.violations.append("pii_detected")
                raise PolicyViolation(f"Personal data in the request is not allowed (types: {', '.join(types)}).",
                                      error_code="GW-004", reason="pii_detected", extra={"pii_types": types})
            if action in ("flag", "shadow"):
                for t in types:
                    self._count("pii", t, action)
                tag = "pii" if action == "flag" else "shadow:pii"
                if tag not in sec.flags:
                    sec.flags.append(tag)
                continue
            if ops is None:
                ops = self._operators(pol)
            if vault is None:
                vault = self._vault_factory()
            applied = self._apply(slot.text, findings, ops, hmac_key=self._key, vault=vault)
            if applied.blocked_types:
                blocked = sorted(applied.blocked_types)
                for t in blocked:
                    self._count("pii", t, "block")
                sec.violations.append("pii_detected")
                raise PolicyViolation(f"Personal data in the request is not allowed (types: {', '.join(blocked)}).",
                                      error_code="GW-004", reason="pii_detected", extra={"pii_types": blocked})
            slot.set(applied.text)
            for r in applied.replaced:
                self._count("pii", r.entity_type, r.operator)
                tag = f"pii:{r.operator}"
                if tag not in sec.actions:
                    sec.actions.append(tag)
        if vault is not None and len(vault):
            ctx.vault = vault
