"""Agent routes state the proxy's own time in a Server-Timing header, on answers and on problems alike."""
from __future__ import annotations

import re

from tests.check.conftest import KEY_A, Proxy

_TIMING = re.compile(r"^app;dur=(\d+\.\d{3})$")
CALL = {"agent_id": "agent-1", "tool_name": "get_weather", "arguments": {"city": "Paris"}}


async def test_a_check_answer_carries_the_proxys_own_time(proxy: Proxy) -> None:
    resp = await proxy.client.post("/api/v1/check", json=CALL, headers={"Authorization": f"Bearer {KEY_A}"})
    assert resp.status == 200
    match = _TIMING.match(resp.headers["Server-Timing"])
    assert match is not None and 0.0 < float(match.group(1)) < 5_000.0


async def test_a_refused_check_carries_it_too(proxy: Proxy) -> None:
    resp = await proxy.client.post("/api/v1/check", json=CALL, headers={"Authorization": "Bearer cm_live_wrong"})
    assert resp.status == 401
    assert _TIMING.match(resp.headers["Server-Timing"]) is not None
