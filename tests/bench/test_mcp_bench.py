"""The bench's MCP scenario drives a real MCP server: handshake, then unique-id tools/call requests."""
from __future__ import annotations

import orjson

from bench.loadgen import LoadSpec, run_load
from bench.run import MCP_CALL, _mcp_session


async def test_mcp_handshake_then_every_tools_call_is_answered(mcp_upstream: str) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    session = _mcp_session(mcp_upstream, headers)
    assert session                                   # the streamable-HTTP server hands out a session id
    result = await run_load(LoadSpec(url=mcp_upstream, body=MCP_CALL, concurrency=2, requests=40, duration_s=20,
                                     headers={**headers, "Mcp-Session-Id": session}))
    # concurrent calls on one session only all succeed when their JSON-RPC ids differ (the nonce)
    assert result.requests == 40 and result.errors == 0, result.statuses


def test_the_bench_call_is_a_valid_jsonrpc_tools_call_once_the_nonce_is_filled() -> None:
    doc = orjson.loads(MCP_CALL.replace(b"@@nonce@@", b"12"))
    assert doc == {"jsonrpc": "2.0", "id": 12, "method": "tools/call",
                   "params": {"name": "get_weather", "arguments": {"city": "Paris"}}}
