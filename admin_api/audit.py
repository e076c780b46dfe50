"""The one helper every admin write goes through to leave an audit trail."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from admin_api.context import Ctx
from admin_api.ids import new_id

log = logging.getLogger("casemate.admin.audit")

SECRET_FIELDS = frozenset((
    "password", "password_hash", "credentials", "credentials_enc", "secret", "key", "api_key", "token",
    "access_token", "refresh_token", "mfa_secret", "mfa_secret_enc", "key_hash", "mfa_code",
))


def redact(value: Any) -> Any:
    """A copy of `value` with every secret-looking field replaced by "[redacted]"."""
    if isinstance(value, dict):
        return {k: ("[redacted]" if k in SECRET_FIELDS else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


async def audit(
    ctx: Ctx, action: str, resource_type: str, resource_id: str | None = None, *,
    before: Any = None, after: Any = None, outcome: str = "success", details: dict[str, Any] | None = None,
    tenant_id: str | None = None, actor: str | None = None,
) -> None:
    """Record who did what to which resource, with the before/after state (secrets redacted)."""
    body: dict[str, Any] = dict(details or {})
    if before is not None:
        body["before"] = redact(before)
    if after is not None:
        body["after"] = redact(after)
    principal = ctx.principal
    event = {
        "id": new_id(),
        "tenant_id": tenant_id or (principal.tenant_id if principal else None),
        "actor": actor or (principal.actor if principal else "anonymous"),
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "outcome": outcome,
        "request_id": ctx.request_id,
        "details": body,
    }
    try:
        await ctx.store.write_audit_events([_json_safe(event)])
    except Exception:  # the change itself is committed; keep serving, but make the gap visible
        log.exception("audit event %s for %s could not be written", action, resource_type)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
