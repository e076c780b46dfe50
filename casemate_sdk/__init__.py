"""Casemate agent SDK: ask Casemate before a tool runs.

    from casemate_sdk import Casemate, ToolBlocked

    cm = Casemate("http://casemate:8080", api_key="cm_live_...", agent_id="billing-bot")

    @cm.guarded_tool()
    def transfer(amount: float, to: str) -> str: ...

    transfer(10, "acct-1")          # runs when allowed, waits for review when pending, raises ToolBlocked when not
"""
from casemate_sdk.client import Casemate, CasemateError, CheckResult, ToolBlocked, check

__all__ = ["Casemate", "CasemateError", "CheckResult", "ToolBlocked", "check"]
