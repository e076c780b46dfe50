"""The client: `Casemate.check` / `acheck`, the `guarded_tool` decorator and the `ToolBlocked` exception.

Depends on httpx only. A pending decision is waited for by long-polling
`GET /api/v1/check/{id}/decision?wait=` until it resolves or `review_wait_s` passes (then the
call counts as blocked; the server resolves it to the policy's timeout decision on its own).
"""
from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

F = TypeVar("F", bound=Callable[..., Any])
_POLL_S = 25.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    check_id: str
    decision: str                        # allow | block (pending is resolved before a result is returned)
    risk_level: str
    category: str
    signals: tuple[str, ...]
    reasons: tuple[str, ...]
    policy_name: str
    anomaly_score: float
    decided_by: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


class ToolBlocked(Exception):
    """Casemate refused the tool call; `result` holds the check (reasons, risk, check id)."""

    def __init__(self, tool_name: str, result: CheckResult) -> None:
        why = "; ".join(result.reasons) or "refused by policy"
        by = f" by {result.decided_by}" if result.decided_by else ""
        super().__init__(f"Casemate blocked tool '{tool_name}'{by} (risk {result.risk_level}): {why} "
                         f"[check {result.check_id}]")
        self.tool_name = tool_name
        self.result = result


def _result(data: Mapping[str, Any], decision: str | None = None, decided_by: str | None = None) -> CheckResult:
    cls = data.get("classification") or {}
    return CheckResult(check_id=data["check_id"], decision=decision or data["decision"],
                       risk_level=data.get("risk_level", ""), category=cls.get("category", ""),
                       signals=tuple(cls.get("signals") or ()), reasons=tuple(data.get("reasons") or ()),
                       policy_name=data.get("policy_name", ""), anomaly_score=float(data.get("anomaly_score") or 0),
                       decided_by=decided_by, raw=dict(data))


class CasemateError(Exception):
    """Casemate answered with an error (the RFC 7807 problem is in `problem`)."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        super().__init__(f"Casemate answered {status}: {problem.get('detail') or problem}")
        self.status = status
        self.problem = problem


def _data(resp: httpx.Response) -> Any:
    body = resp.json()
    if resp.status_code >= 400:
        raise CasemateError(resp.status_code, body)
    return body["data"]


def _arguments(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}


class Casemate:
    """A client for one agent. Thread-safe for the sync API; use `acheck` from async code."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, agent_token: str | None = None,
                 agent_id: str | None = None, timeout_s: float = 5.0, review_wait_s: float = 300.0) -> None:
        self.base_url = (base_url or os.environ.get("CASEMATE_URL") or "http://127.0.0.1:8080").rstrip("/")
        headers = {}
        key = api_key or os.environ.get("CASEMATE_API_KEY")
        token = agent_token or os.environ.get("CASEMATE_AGENT_TOKEN")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if token:
            headers["X-Casemate-Agent-Token"] = token
        self.agent_id = agent_id
        self.review_wait_s = review_wait_s
        self._headers = headers
        self._timeout = timeout_s
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None

    def _body(self, tool_name: str, arguments: Any, session_id: str | None,
              context: Mapping[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"tool_name": tool_name, "arguments": arguments}
        if self.agent_id:
            body["agent_id"] = self.agent_id
        if session_id:
            body["session_id"] = session_id
        if context:
            body["context"] = dict(context)
        return body

    # -- sync -----------------------------------------------------------------------------------
    def check(self, tool_name: str, arguments: Any = None, *, session_id: str | None = None,
              context: Mapping[str, Any] | None = None) -> CheckResult:
        """Ask before running a tool; a pending decision is waited for (up to `review_wait_s`)."""
        if self._sync is None:
            self._sync = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=self._timeout)
        data = _data(self._sync.post("/api/v1/check", json=self._body(tool_name, arguments, session_id, context)))
        if data["decision"] != "pending":
            return _result(data)
        deadline = time.monotonic() + self.review_wait_s
        while (left := deadline - time.monotonic()) > 0:
            wait = min(_POLL_S, left)
            d = _data(self._sync.get(f"/api/v1/check/{data['check_id']}/decision", params={"wait": f"{wait:.1f}"},
                                     timeout=wait + self._timeout))
            if d["decision"] != "pending":
                return _result(data, d["decision"], d.get("decided_by"))
        return _result(data, "block", "client:review-timeout")

    # -- async ----------------------------------------------------------------------------------
    async def acheck(self, tool_name: str, arguments: Any = None, *, session_id: str | None = None,
                     context: Mapping[str, Any] | None = None) -> CheckResult:
        if self._async is None:
            self._async = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=self._timeout)
        resp = await self._async.post("/api/v1/check", json=self._body(tool_name, arguments, session_id, context))
        data = _data(resp)
        if data["decision"] != "pending":
            return _result(data)
        deadline = time.monotonic() + self.review_wait_s
        while (left := deadline - time.monotonic()) > 0:
            wait = min(_POLL_S, left)
            d = _data(await self._async.get(f"/api/v1/check/{data['check_id']}/decision",
                                            params={"wait": f"{wait:.1f}"}, timeout=wait + self._timeout))
            if d["decision"] != "pending":
                return _result(data, d["decision"], d.get("decided_by"))
        return _result(data, "block", "client:review-timeout")

    # -- decorator ------------------------------------------------------------------------------
    def guarded_tool(self, name: str | None = None, *, session_id: str | None = None) -> Callable[[F], F]:
        """Check every call of the wrapped function (sync or async) first; raise ToolBlocked unless allowed.

        The tool name defaults to the function's name; its bound arguments are the check's arguments.
        """
        def wrap(fn: F) -> F:
            tool = name or fn.__name__
            if inspect.iscoroutinefunction(fn):
                @functools.wraps(fn)
                async def aguarded(*args: Any, **kwargs: Any) -> Any:
                    result = await self.acheck(tool, _arguments(fn, args, kwargs), session_id=session_id)
                    if not result.allowed:
                        raise ToolBlocked(tool, result)
                    return await fn(*args, **kwargs)
                return aguarded  # type: ignore[return-value]

            @functools.wraps(fn)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                result = self.check(tool, _arguments(fn, args, kwargs), session_id=session_id)
                if not result.allowed:
                    raise ToolBlocked(tool, result)
                return fn(*args, **kwargs)
            return guarded  # type: ignore[return-value]
        return wrap

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
        self.close()


_default: Casemate | None = None


def check(tool_name: str, arguments: Any = None, **kw: Any) -> CheckResult:
    """`Casemate().check(...)` with the client configured from CASEMATE_URL / CASEMATE_API_KEY /
    CASEMATE_AGENT_TOKEN; raises ToolBlocked when the call is not allowed."""
    global _default
    if _default is None:
        _default = Casemate(agent_id=os.environ.get("CASEMATE_AGENT_ID"))
    result = _default.check(tool_name, arguments, **kw)
    if not result.allowed:
        raise ToolBlocked(tool_name, result)
    return result
