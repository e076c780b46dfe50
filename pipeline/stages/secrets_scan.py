"""Stage 9: credentials in prompts (provider keys, tokens, private keys, passwords): block or redact.

Infrastructure identifiers the same detector finds (AWS ARNs and account IDs, bucket endpoints,
storage accounts, store domains: kind "identifier") are not credentials: they follow
`secrets.identifiers_action` (default flag: audit and metrics, the request unchanged) and are
reported as `identifiers_detected`, apart from `secrets_detected`. Details name the types, never
the values."""
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
        cred_action = pol.secrets_action
        id_action = pol.secrets_identifiers_action
        sec = ctx.security
        for slot in request_slots(ctx.body, ctx.route):
            findings = self._det.scan(slot.text)
            if not findings:
                continue
            creds = [f for f in findings if f.kind == "credential"]
            ids = [f for f in findings if f.kind != "credential"] if id_action != "off" else []
            cred_types = sorted({f.secret_type for f in creds})
            id_types = sorted({f.secret_type for f in ids})
            sec.secrets_detected.extend(t for t in cred_types if t not in sec.secrets_detected)
            sec.identifiers_detected.extend(t for t in id_types if t not in sec.identifiers_detected)
            for t in cred_types:
                self._count("secrets", t, cred_action)
            for t in id_types:
                self._count("secrets", t, id_action)
            if creds and cred_action == "block":
                sec.violations.append("secret_detected")
                raise PolicyViolation(f"Credentials in the request are not allowed (types: {', '.join(cred_types)}).",
                                      error_code="GW-005", reason="secret_detected",
                                      extra={"secret_types": cred_types})
            if ids and id_action == "block":
                sec.violations.append("identifier_detected")
                raise PolicyViolation(
                    f"Infrastructure identifiers in the request are not allowed (types: {', '.join(id_types)}).",
                    error_code="GW-005", reason="identifier_detected", extra={"identifier_types": id_types})
            redact = [(f, "SECRET") for f in creds if cred_action == "redact"]
            redact += [(f, "IDENTIFIER") for f in ids if id_action == "redact"]
            if redact:
                text = slot.text
                for f, label in sorted(redact, key=lambda p: p[0].start, reverse=True):
                    text = text[:f.start] + f"[REDACTED_{label}:{f.secret_type}]" + text[f.end:]
                slot.set(text)
            for found, action, name in ((creds, cred_action, "secrets"), (ids, id_action, "identifiers")):
                if not found:
                    continue
                tag = {"redact": f"{name}:redact", "flag": name}.get(action, f"shadow:{name}")
                bucket = sec.actions if action == "redact" else sec.flags
                if tag not in bucket:
                    bucket.append(tag)
