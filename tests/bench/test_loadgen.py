"""The load generator counts every request, reports percentiles and TTFT, and respects its bounds."""
from __future__ import annotations

import math
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from bench.loadgen import NONCE, LoadSpec, chat_body, percentile, run_load
from bench.mock_upstream import MOCK_KEY, base_url, start
from tests.conftest import serve_post

AUTH = {"Authorization": "Bearer sk-load"}


@pytest.fixture
async def mock() -> AsyncIterator[web.AppRunner]:
    runner = await start("127.0.0.1", 0)
    yield runner
    await runner.cleanup()


def chat_url(runner: web.AppRunner) -> str:
    return base_url(runner) + "/v1/chat/completions"


def body_with(text: str, *, stream: bool = False) -> bytes:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


def test_chat_body_has_the_requested_size_and_one_nonce_slot() -> None:
    body = chat_body(1024)
    assert len(body) == 1024
    assert body.count(NONCE) == 1
    parsed = orjson.loads(body)
    assert [m["role"] for m in parsed["messages"]] == ["system", "user"]
    streamed = orjson.loads(chat_body(2048, stream=True))
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}
    assert NONCE not in chat_body(512, nonce=False)


def test_percentile_uses_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


async def test_json_run_counts_every_request_and_orders_percentiles(mock: web.AppRunner) -> None:
    result = await run_load(LoadSpec(url=chat_url(mock), body=chat_body(1024), headers=AUTH,
                                     concurrency=4, requests=60, duration_s=20))
    assert (result.requests, result.errors, result.statuses) == (60, 0, {"200": 60})
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
    assert result.rps > 0 and result.duration_s > 0
    assert result.ttft_p50_ms is None


async def test_each_request_gets_a_unique_nonce(mock: web.AppRunner) -> None:
    await run_load(LoadSpec(url=chat_url(mock), body=chat_body(600), headers=AUTH, concurrency=3, requests=30))
    recorded = mock.app[MOCK_KEY].requests
    users = [r["body"]["messages"][-1]["content"] for r in recorded]
    assert len(users) == 30
    assert len(set(users)) == 30
    assert all(NONCE.decode() not in text for text in users)


async def test_stream_run_measures_time_to_first_token(mock: web.AppRunner) -> None:
    result = await run_load(LoadSpec(url=chat_url(mock), body=chat_body(1024, stream=True), headers=AUTH,
                                     concurrency=4, requests=20, stream=True))
    assert result.requests == 20 and result.errors == 0
    assert result.ttft_p50_ms is not None and result.ttft_p99_ms is not None
    assert 0 < result.ttft_p50_ms <= result.p99_ms


async def test_stream_ttft_waits_for_content_not_the_first_byte(mock: web.AppRunner) -> None:
    body = body_with("[[mock:reply=one two three]] [[mock:chunk_delay_ms=60]]", stream=True)
    result = await run_load(LoadSpec(url=chat_url(mock), body=body, headers=AUTH, concurrency=1, requests=2,
                                     stream=True))
    assert result.requests == 2
    # the role chunk goes out at once, the first content chunk one chunk delay later
    assert result.ttft_p50_ms is not None and result.ttft_p50_ms >= 60
    assert result.p50_ms >= 3 * 60


async def test_error_statuses_and_dropped_connections_are_counted_as_errors(mock: web.AppRunner) -> None:
    failing = await run_load(LoadSpec(url=chat_url(mock), body=body_with("x [[mock:status=500]]"), headers=AUTH,
                                      concurrency=2, requests=10))
    assert (failing.requests, failing.errors, failing.statuses) == (0, 10, {"500": 10})
    assert math.isnan(failing.p50_ms)
    dropped = await run_load(LoadSpec(url=chat_url(mock), body=body_with("a b c [[mock:kill_after=2]]", stream=True),
                                      headers=AUTH, concurrency=2, requests=6, stream=True))
    assert dropped.requests == 0 and dropped.errors == 6
    assert set(dropped.statuses) == {"ClientPayloadError"}


async def test_time_bound_stops_issuing_new_requests(mock: web.AppRunner) -> None:
    body = body_with("slow [[mock:delay_ms=50]]")
    result = await run_load(LoadSpec(url=chat_url(mock), body=body, headers=AUTH, concurrency=2,
                                     requests=10_000, duration_s=0.3))
    assert 0 < result.requests < 40
    assert result.errors == 0


async def test_server_timing_percentiles_come_from_the_answers_header() -> None:
    durations = iter(["app;dur=0.100", "app;dur=0.300", "app;dur=0.200", "app;dur=0.400"])

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({}, headers={"Server-Timing": next(durations)})

    runner, url = await serve_post("/x", handler)
    try:
        result = await run_load(LoadSpec(url=url, body=b"{}", concurrency=1,
                                         requests=4, server_timing=True))
        plain = await run_load(LoadSpec(url=url, body=b"{}", concurrency=1, requests=0))
    finally:
        await runner.cleanup()
    assert (result.server_p50_ms, result.server_p99_ms) == (0.2, 0.4)
    assert plain.server_p50_ms is None
