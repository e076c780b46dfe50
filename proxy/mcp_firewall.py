"""An MCP firewall: the proxy's `/mcp` endpoint (streamable HTTP) in front of one upstream MCP server.

Clients authenticate to Casemate (API key, or an agent token which also names the agent; else the
`X-Casemate-Agent-Id` header, else "mcp-client"). Every JSON-RPC message is passed through, except:

- `tools/call` requests run through the same check as POST /api/v1/check (session = the MCP
  session id). A blocked call never reaches the upstream: the client gets a JSON-RPC error
  (code -32001, `data` carries the check). A pending call waits for review up to the policy's
  review timeout and then proceeds or is refused.
- `tools/list` results drop the tools the policy refuses outright (a tool rule `action: block`,
  unknown tools under `unknown_tools: block`, shell / code-execution tools under `no-shell` /
  `no-code-execution`).
- `tools/call` results are scanned for indirect prompt injection; a finding taints the session,
  which raises the risk of its next consequential call.

Upstream answers in JSON or as an SSE stream; both are relayed message by message (refusals
first). GET (the server's notification stream) and DELETE (end of session) are relayed as they are.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from detectors.toolcall import flatten_arguments
from pipeline.context import Principal, RequestContext
from pipeline.errors import StageError
from pipeline.stages.request_id import assign_request_id
from proxy.problems import problem_response
from proxy.providers import http1
from proxy.sse_events import SseParser

log = logging.getLogger("casemate.mcp")

BLOCKED_CODE = -32001
_FORWARD_REQUEST = ("Accept", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-ID")
_FORWARD_RESPONSE = ("Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version", "Cache-Control")
_FORWARD_RESPONSE_KEYS = tuple((h, h.lower()) for h in _FORWARD_RESPONSE)   # the client's headers are lower case
_CONNECT_TIMEOUT_S = 5.0


def _rpc_error(msg_id: Any, message: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": BLOCKED_CODE, "message": message, "data": data}}


def _sse(payload: dict[str, Any], event: str = "message", event_id: str | None = None) -> bytes:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head.encode() + b"data: " + orjson.dumps(payload) + b"\n\n"


class _Exchange:
    """What one POST asked for: tool calls by request id, tools/list request ids."""

    __slots__ = ("calls", "lists")

    def __init__(self) -> None:
        self.calls: dict[Any, str] = {}
        self.lists: set[Any] = set()


class McpFirewall:
    def __init__(self, svc: Any, upstream_url: str) -> None:
        self.svc = svc
        http1.check_url(upstream_url)      # the configuration checked it already; refuse anything else here
        self.upstream = upstream_url
        self._http: http1.HTTP1Client | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _client(self) -> http1.HTTP1Client:
        if self._http is None:
            # the providers' keep-alive client: no cookies (clients of every tenant share it), no read
            # timeout (a tool may run long; the notification stream stays open for the session)
            self._http = http1.HTTP1Client(connect_timeout_s=_CONNECT_TIMEOUT_S)
        return self._http

    # -- entry ----------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ctx = RequestContext("mcp", request.method, request.path, request.headers, b"", request.remote)
        assign_request_id(ctx)
        try:
            principal, token_agent = self.svc.authenticate(ctx)
            self.svc.require(principal, "checks:write")
            if request.method == "POST":          # each JSON-RPC post counts (the GET stream is one long request)
                await self.svc.rate_limit(ctx)
        except StageError as err:
            return problem_response(err, instance=ctx.path, request_id=ctx.request_id, openai=False,
                                    headers=ctx.response_headers)
        agent_id = token_agent or request.headers.get("X-Casemate-Agent-Id") or "mcp-client"
        headers = {h: request.headers[h] for h in _FORWARD_REQUEST if h in request.headers}
        headers["X-Request-ID"] = ctx.request_id
        if request.method != "POST":
            return await self._relay(request, headers)
        raw = await request.read()
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return web.json_response({"jsonrpc": "2.0", "id": None,
                                      "error": {"code": -32700, "message": "Parse error"}}, status=400)
        batch = isinstance(doc, list)
        messages = doc if batch else [doc]
        ex = _Exchange()
        refusals: list[dict[str, Any]] = []
        forward: list[Any] = []
        session_id = request.headers.get("Mcp-Session-Id")
        for m in messages:
            method = m.get("method") if isinstance(m, dict) else None
            if method == "tools/call" and "id" in m:
                refusal = await self._gate(principal, agent_id, session_id, m, ctx.request_id)
                if refusal is not None:
                    refusals.append(refusal)
                    continue
                ex.calls[m["id"]] = str((m.get("params") or {}).get("name", ""))
            elif method == "tools/list" and "id" in m:
                ex.lists.add(m["id"])
            forward.append(m)
        if not forward:
            return web.Response(body=orjson.dumps(refusals if batch else refusals[0]), content_type="application/json",
                                headers={"X-Request-ID": ctx.request_id})
        body = orjson.dumps(forward if batch else forward[0])
        try:
            up = await self._client().request("POST", self.upstream, headers=b"", extra_headers=headers, body=body)
        except http1.HTTPClientError as exc:
            log.warning("MCP upstream unreachable: %s", exc.__class__.__name__)
            return web.json_response({"jsonrpc": "2.0", "id": None, "error": {
                "code": -32603, "message": "The upstream MCP server is unreachable."}}, status=502)
        try:
            return await self._answer(request, up, ex, refusals, principal, session_id, batch, ctx.request_id)
        finally:
            up.close()

    # -- gating ---------------------------------------------------------------------------------
    async def _gate(self, principal: Principal, agent_id: str, session_id: str | None, m: dict[str, Any],
                    request_id: str) -> dict[str, Any] | None:
        """None when the call may go upstream, else the JSON-RPC error to answer with."""
        params = m.get("params") or {}
        body = {"tool_name": str(params.get("name", "")), "arguments": params.get("arguments"),
                "session_id": session_id}
        data, verdict = await self.svc.run_check(principal, agent_id, body, request_id)
        decision = data["decision"]
        if decision == "pending":
            row = await self.svc.wait_decision(principal.tenant_id, data["check_id"], verdict.timeout_s + 1.0)
            decision = row["decision"]
            if decision == "pending":          # still open after the whole window: the timeout decides
                decision = (await self.svc.resolve_timeout(row))["decision"]
            data["decision"] = decision
            data["decided_by"] = row.get("decided_by")
        if decision == "allow":
            return None
        summary = "; ".join(data["reasons"][:3]) or "refused by policy"
        return _rpc_error(m["id"], f"Blocked by Casemate: {summary}", {
            "check_id": data["check_id"], "decision": decision, "risk_level": data["risk_level"],
            "reasons": data["reasons"], "policy_name": data["policy_name"]})

    def _inspect(self, msg: Any, ex: _Exchange, principal: Principal, agent_id: str, session_id: str | None) -> Any:
        """Filter a tools/list result; scan a tools/call result for injection (taints the session)."""
        if not isinstance(msg, dict) or "id" not in msg or "result" not in msg:
            return msg
        rid = msg["id"]
        result = msg["result"]
        if rid in ex.lists and isinstance(result, dict) and isinstance(result.get("tools"), list):
            kept = []
            for tool in result["tools"]:
                schema = tool.get("inputSchema") or {}
                keys = list((schema.get("properties") or {}).keys()) if isinstance(schema, dict) else []
                if not self.svc.tool_hidden(principal, agent_id, str(tool.get("name", "")), keys):
                    kept.append(tool)
            msg = {**msg, "result": {**result, "tools": kept}}
        elif rid in ex.calls and session_id and isinstance(result, dict):
            text = flatten_arguments(result.get("content"))[0]
            if self.svc.engine is not None and self.svc.engine.injected(text):
                self.svc.engine.taint.mark(principal.tenant_id, session_id, f"output of {ex.calls[rid]}")
        return msg

    # -- responses ------------------------------------------------------------------------------
    async def _answer(self, request: web.Request, up: http1.Response, ex: _Exchange,
                      refusals: list[dict[str, Any]], principal: Principal, session_id: str | None, batch: bool,
                      request_id: str) -> web.StreamResponse:
        out_headers = {h: up.headers[k] for h, k in _FORWARD_RESPONSE_KEYS if k in up.headers}
        out_headers["X-Request-ID"] = request_id
        session_id = session_id or up.headers.get("mcp-session-id")
        agent_id = principal.subject if principal.kind == "agent" else (
            request.headers.get("X-Casemate-Agent-Id") or "mcp-client")
        ctype = up.headers.get("content-type", "")
        if ctype.startswith("text/event-stream"):
            return await self._relay_events(request, up, out_headers, refusals,
                                            lambda msg: self._inspect(msg, ex, principal, agent_id, session_id))
        payload = await up.read()
        if ctype.startswith("application/json") and payload:
            doc = orjson.loads(payload)
            items = doc if isinstance(doc, list) else [doc]
            items = [self._inspect(m, ex, principal, agent_id, session_id) for m in items] + refusals
            body = orjson.dumps(items if (batch or len(items) > 1) else items[0])
            return web.Response(status=up.status, body=body, headers=out_headers)
        if refusals and up.status == 202:
            out_headers["Content-Type"] = "application/json"
            return web.Response(status=200, body=orjson.dumps(refusals if batch else refusals[0]), headers=out_headers)
        return web.Response(status=up.status, body=payload, headers=out_headers)

    async def _relay_events(self, request: web.Request, up: http1.Response, out_headers: dict[str, str],
                            refusals: list[dict[str, Any]], inspect: Callable[[Any], Any]) -> web.StreamResponse:
        """Relay an SSE answer chunk by chunk, each JSON-RPC message inspected (refusals first).

        When the upstream's whole answer has arrived before anything was sent (the usual case for a
        tool call), it goes out as one plain response instead of a chunked stream.
        """
        parser = SseParser()
        out = [_sse(r) for r in refusals]
        resp: web.StreamResponse | None = None

        def take(events: list[tuple[str, str | None, str]]) -> None:
            for event, event_id, data in events:
                try:
                    msg = orjson.loads(data)
                except orjson.JSONDecodeError:
                    out.append(_raw_event(event, event_id, data))
                    continue
                out.append(_sse(inspect(msg), event, event_id))

        try:
            async for chunk in up.chunks():
                take(parser.feed(chunk))
                if up.at_eof():
                    break
                if out:
                    if resp is None:
                        resp = web.StreamResponse(status=up.status, headers=out_headers)
                        await resp.prepare(request)
                    await resp.write(b"".join(out))
                    out.clear()
            take(parser.close())
            if resp is None:
                return web.Response(status=up.status, body=b"".join(out), headers=out_headers)
            if out:
                await resp.write(b"".join(out))
            await resp.write_eof()
        except ConnectionResetError:             # the client went away mid-stream: nothing left to tell it
            pass
        return resp if resp is not None else web.Response(status=499)

    async def _relay(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        try:
            up = await self._client().request(request.method, self.upstream, headers=b"", extra_headers=headers)
        except http1.HTTPClientError:
            return web.Response(status=502, text="The upstream MCP server is unreachable.")
        try:
            out = {h: up.headers[k] for h, k in _FORWARD_RESPONSE_KEYS if k in up.headers}
            resp = web.StreamResponse(status=up.status, headers=out)
            await resp.prepare(request)
            try:
                async for chunk in up.chunks():
                    await resp.write(chunk)
                await resp.write_eof()
            except ConnectionResetError:         # the client closed its notification stream
                pass
            return resp
        finally:
            up.close()


def _raw_event(event: str, event_id: str | None, data: str) -> bytes:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return (head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n").encode()
