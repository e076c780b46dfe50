"""Stage 9: credentials in prompts (provider keys, tokens, private keys, passwords): block or redact.
Details name the secret types, never the values."""
from __future__ import annotations

from typing import Any, Callable

from pipeline.context import RequestContext
from pipeline.errors import PolicyViolation
from pipeline.stages.messages import request_slots

Count = Callable[[str, str, str], None]


class SecretsScanStage:
    name = "secrets_scan"
    phase = "tail"
    optional = True
    slot = "pre_cache"

    def __init__(self, detector: Any, count: Count) -> None:
        self._det = detector
        self._count = count

    def __call__(self, ctx: RequestContext) -> None:
        pol = ctx.policy
        assert pol is not None
        action = pol.secrets_action
        sec = ctx.security
        for slot in request_slots(ctx.body, ctx.route):
            findings = self._det.scan(slot.text)
            if not findings:
                continue
            types = sorted({f.secret_type for f in findings})
            sec.secrets_detected.extend(t for t in types if t not in sec.secrets_detected)
            for t in types:
                self._count("secrets", t, action)
            if action == "block":
                sec.violations.append("secret_detected")
                raise PolicyViolation(f"Credentials in the request are not allowed (types: {', '.join(types)}).",
                                      error_code="GW-005", reason="secret_detected", extra={"secret_types": types})
            if action == "redact":
                text = slot.text
                for f in sorted(findings, key=lambda f: f.start, reverse=True):
                    text = text[:f.start] + f"[REDACTED_SECRET:{f.secret_type}]" + text[f.end:]
                slot.set(text)
                if "secrets:redact" not in sec.actions:
                    sec.actions.append("secrets:redact")
            else:
                tag = "secrets" if action == "flag" else "shadow:secrets"
                if tag not in sec.flags:
                    sec.flags.append(tag)
