"""Stage 3: global, tenant and key kill switches (provider/model ones are checked by the policy stage)."""
from __future__ import annotations

from pipeline.context import RequestContext
from pipeline.directory import Directory
from pipeline.errors import SwitchedOff


class KillSwitchStage:
    name = "kill_switch"
    phase = "prefix"
    optional = False

    def __init__(self, directory: Directory) -> None:
        self._dir = directory

    def __call__(self, ctx: RequestContext) -> None:
        d = self._dir
        if d.killed_global is not None:
            raise SwitchedOff(f"Casemate is switched off: {d.killed_global}", error_code="GW-503", reason="kill_global")
        if not d.killed:
            return
        p = ctx.principal
        if p is None:
            return
        reason = d.killed.get(("tenant", p.tenant_id))
        if reason is not None:
            raise SwitchedOff(f"This organization is switched off: {reason}", error_code="GW-503", reason="kill_tenant")
        reason = d.killed.get(("key", p.subject))
        if reason is not None:
            raise SwitchedOff(f"This API key is switched off: {reason}", error_code="GW-503", reason="kill_key")


def check_model_provider(d: Directory, provider: str | None, model: str | None) -> None:
    """Provider and model switches, once the route is known."""
    if not d.killed:
        return
    if provider is not None:
        reason = d.killed.get(("provider", provider))
        if reason is not None:
            raise SwitchedOff(f"Provider '{provider}' is switched off: {reason}", error_code="GW-503", reason="kill_provider")
    if model is not None:
        reason = d.killed.get(("model", model))
        if reason is not None:
            raise SwitchedOff(f"Model '{model}' is switched off: {reason}", error_code="GW-503", reason="kill_model")
