"""Traces (ingest at once, written in batches; filters, cursor) and anomalies (baseline -> events), per tenant."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from proxy.check_routes import CHECK_SERVICE
from tests.check.conftest import KEY_A, KEY_B, Proxy


async def _flush(proxy: Proxy) -> None:
    svc = proxy.client.server.app[CHECK_SERVICE]
    assert svc.traces is not None and svc.anomalies is not None
    await svc.traces.flush()
    await svc.anomalies.flush()


async def _list(proxy: Proxy, path: str, key: str = KEY_A) -> dict[str, Any]:
    _, body = await proxy.call("GET", path, key, expect=200)
    return body


async def test_traces_are_accepted_at_once_and_listed_with_filters(proxy_any: Proxy) -> None:
    proxy = proxy_any
    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    status, body = await proxy.call("POST", "/api/v1/traces", json={"traces": [
        {"agent_id": "crawler", "tool_name": "http_get", "arguments": {"url": "https://example.com"},
         "result": {"status": 200}, "decision": "allow", "duration_ms": 120.5, "ts": old},
        {"agent_id": "crawler", "tool_name": "http_get", "arguments": {"url": "http://10.0.0.5/"},
         "decision": "block", "error": "blocked by policy"},
        {"agent_id": "mailer", "tool_name": "send_email", "arguments": {"to": "a@example.com"}, "result": "sent"},
    ]})
    assert status == 201 and body["data"]["accepted"] == 3 and len(body["data"]["ids"]) == 3
    status, body = await proxy.call("POST", "/api/v1/traces", json={"agent_id": "mailer", "tool_name": "noop",
                                                                     "result": None})
    assert status == 201 and body["data"]["accepted"] == 1
    await proxy.call("POST", "/api/v1/traces", KEY_B, json={"agent_id": "crawler", "tool_name": "x"}, expect=201)
    await _flush(proxy)

    everything = await _list(proxy, "/api/v1/traces")
    assert everything["meta"]["pagination"]["total_count"] == 4
    crawler = await _list(proxy, "/api/v1/traces?agent_id=crawler")
    assert {t["tool_name"] for t in crawler["data"]} == {"http_get"} and len(crawler["data"]) == 2
    blocked = await _list(proxy, "/api/v1/traces?blocked=true")
    assert [t["error"] for t in blocked["data"]] == ["blocked by policy"]
    recent_from = (datetime.now(UTC) - timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    recent = await _list(proxy, f"/api/v1/traces?agent_id=crawler&from={recent_from}")
    assert len(recent["data"]) == 1 and recent["data"][0]["blocked"] is True
    older = await _list(proxy, f"/api/v1/traces?to={recent_from}")
    assert [t["result"] for t in older["data"]] == [{"status": 200}]

    page1 = await _list(proxy, "/api/v1/traces?limit=3")
    assert page1["meta"]["pagination"]["has_more"] is True and len(page1["data"]) == 3
    cursor = page1["meta"]["pagination"]["next_cursor"]
    page2 = await _list(proxy, f"/api/v1/traces?limit=3&cursor={cursor}")
    assert len(page2["data"]) == 1 and page2["meta"]["pagination"]["has_more"] is False
    assert not {t["id"] for t in page1["data"]} & {t["id"] for t in page2["data"]}

    other = await _list(proxy, "/api/v1/traces", KEY_B)
    assert [t["agent_id"] for t in other["data"]] == ["crawler"] and other["data"][0]["tool_name"] == "x"


async def test_trace_validation_errors_are_problems(proxy: Proxy) -> None:
    status, body = await proxy.call("POST", "/api/v1/traces", json={"tool_name": "x"})
    assert status == 400 and body["field"] == "agent_id"
    status, body = await proxy.call("POST", "/api/v1/traces", json={"traces": []})
    assert status == 400
    status, body = await proxy.call("GET", "/api/v1/traces?blocked=perhaps")
    assert status == 400 and body["field"] == "blocked"
    status, body = await proxy.call("GET", "/api/v1/traces?cursor=bogus")
    assert status == 400 and body["field"] == "cursor"
    status, body = await proxy.call("GET", "/api/v1/traces?colour=red")
    assert status == 400


async def _train(proxy: Proxy, agent: str, n: int, key: str | None = None) -> None:
    for i in range(n):
        await proxy.check("get_weather", {"city": ["Paris", "Oslo", "Rome"][i % 3]}, agent=agent,
                          **({"key": key} if key else {}))


async def test_unusual_call_scores_high_and_creates_an_anomaly_event(proxy_any: Proxy) -> None:
    proxy = proxy_any
    rules = {"anomaly": {"min_samples": 20, "threshold": 0.7}}
    await proxy.set_tool_rules(proxy.tenant_a, rules)
    await proxy.set_tool_rules(proxy.tenant_b, rules)
    await _train(proxy, "weather-bot", 25)
    usual = await proxy.check("get_weather", {"city": "Rome"}, agent="weather-bot")
    assert usual["anomaly_score"] < 0.3
    odd = await proxy.check("export_table", {"table": "customers", "columns": ["email"] * 400}, agent="weather-bot")
    assert odd["anomaly_score"] >= 0.7 and "anomalous" in odd["classification"]["signals"]
    assert odd["risk_level"] in ("MEDIUM", "HIGH", "CRITICAL")
    fresh = await proxy.check("export_table", {"table": "customers"}, agent="new-bot")
    assert fresh["anomaly_score"] == 0.0                      # no baseline yet
    await _train(proxy, "weather-bot", 25, key=KEY_B)        # same agent name in the other tenant
    await proxy.check("export_table", {"table": "t", "columns": ["x"] * 400}, agent="weather-bot", key=KEY_B)
    await _flush(proxy)

    body = await _list(proxy, "/api/v1/anomalies?min_score=0.7&agent_id=weather-bot")
    assert len(body["data"]) == 1
    event = body["data"][0]
    assert event["check_id"] == odd["check_id"] and event["tool_name"] == "export_table"
    assert event["components"]["tool"] == 1.0 and event["decision"] == odd["decision"]
    above = min(1.0, round(event["score"] + 0.001, 3))
    assert (await _list(proxy, f"/api/v1/anomalies?agent_id=weather-bot&min_score={above}"))["data"] == []
    decision = odd["decision"]
    other_decision = "block" if decision != "block" else "allow"
    assert len((await _list(proxy, f"/api/v1/anomalies?decision={decision}"))["data"]) == 1
    assert (await _list(proxy, f"/api/v1/anomalies?decision={other_decision}"))["data"] == []
    theirs = await _list(proxy, "/api/v1/anomalies", KEY_B)
    assert len(theirs["data"]) == 1 and theirs["data"][0]["check_id"] != odd["check_id"]
    status, body = await proxy.call("GET", "/api/v1/anomalies?min_score=2")
    assert status == 400 and body["field"] == "min_score"


async def test_anomaly_events_follow_the_configured_threshold(proxy: Proxy) -> None:
    await proxy.set_tool_rules(proxy.tenant_a, {"anomaly": {"min_samples": 10, "threshold": 0.95}})
    await _train(proxy, "b", 12)
    data = await proxy.check("export_table", {"table": "x"}, agent="b")
    assert 0.5 <= data["anomaly_score"] < 0.95
    await _flush(proxy)
    await asyncio.sleep(0)
    assert (await _list(proxy, "/api/v1/anomalies"))["data"] == []


async def test_with_redis_every_worker_scores_against_the_agents_whole_history(tmp_path, detectors) -> None:
    """Two runtimes on one PostgreSQL + Redis: calls seen by one reach the other's baseline."""
    from tests.check.conftest import _drop_shared_baselines, start_proxy
    from tests.conftest import PG_URL, REDIS_URL, create_pg_schema, drop_pg_schema

    schema = await create_pg_schema("bls")
    url = f"{PG_URL}?schema={schema}"
    first, c1 = await start_proxy(tmp_path / "w1", detectors, database_url=url, redis_url=REDIS_URL)
    second, c2 = await start_proxy(tmp_path / "w2", detectors, database_url=url, redis_url=REDIS_URL)
    try:
        for i in range(30):
            await first.check("get_weather", {"city": f"city {i}"}, agent="shared-agent")
        await second.check("get_weather", {"city": "Oslo"}, agent="shared-agent")   # the second worker meets it
        tenant = first.tenant_a
        for _ in range(60):
            if second.client.server.app[CHECK_SERVICE].engine.baselines.samples(tenant, "shared-agent") >= 31:
                break
            await asyncio.sleep(0.1)
        assert second.client.server.app[CHECK_SERVICE].engine.baselines.samples(tenant, "shared-agent") == 31
        assert first.client.server.app[CHECK_SERVICE].engine.baselines.samples(tenant, "shared-agent") in (30, 31)
    finally:
        await c1.close()
        await c2.close()
        await drop_pg_schema(schema)
        await _drop_shared_baselines(first.tenant_a, first.tenant_b)
