"""Router resilience: retries, Retry-After, streams, failover, circuit breaker, timeouts, error mapping."""
from __future__ import annotations

import asyncio
from typing import Callable

import pytest

from pipeline.errors import UpstreamFailed, UpstreamTimeout
from proxy.providers import ProviderConfig, ProviderRouter, StreamInterrupted, UpstreamRejected, UpstreamTrace
from tests.providers.scripted import (
    FakeClock,
    RecordingObserver,
    RecordingSleep,
    Reply,
    ScriptedUpstream,
    chat_body,
    openai_completion,
    openai_sse,
)

Build = Callable[..., ProviderRouter]
CHAT = "/v1/chat/completions"
BACKUP_CHAT = "/backup/v1/chat/completions"
KEY = "sk-live-SECRET-0123456789"


def cfg(upstream: ScriptedUpstream, name: str = "oa", prefix: str = "", **kw: object) -> ProviderConfig:
    return ProviderConfig(name=name, kind="openai", base_url=f"{upstream.url}{prefix}/v1", api_key=KEY,
                          **kw)  # type: ignore[arg-type]


def err(status: int, message: str = "boom", **headers: str) -> Reply:
    return Reply(status=status, json={"error": {"message": message, "type": "server_error"}}, headers=headers)


async def test_two_failures_then_success_is_retried_with_jittered_backoff(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(503), err(502), Reply(json=openai_completion("finally")))
    sleep, observer = RecordingSleep(), RecordingObserver()
    router = make_router(cfg(upstream, backoff_base_s=0.5), sleep=sleep, observer=observer)
    trace = UpstreamTrace()
    result = await router.chat(router.resolve("m"), chat_body(), "r", trace=trace)
    assert result["choices"][0]["message"]["content"] == "finally"
    assert len(upstream.calls(CHAT)) == 3 and trace.attempts == 3 and not trace.failed_over
    assert len(sleep.delays) == 2
    assert 0 <= sleep.delays[0] <= 0.5 and 0 <= sleep.delays[1] <= 1.0     # full jitter under base * 2^n
    assert observer.retries == [("oa", "server_error"), ("oa", "server_error")]
    assert observer.latencies == [("oa", "server_error"), ("oa", "server_error"), ("oa", "ok")]


async def test_retry_after_is_honoured_and_a_429_does_not_count_against_the_breaker(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(429, "slow down", **{"Retry-After": "3"}), Reply(json=openai_completion()))
    sleep = RecordingSleep()
    router = make_router(cfg(upstream, breaker_failures=1), sleep=sleep)
    await router.chat(router.resolve("m"), chat_body(), "r")
    assert sleep.delays[0] >= 3.0
    assert router.breaker_states() == {"oa": "closed"}


async def test_retry_after_beyond_the_cap_skips_retrying(make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(429, "quota", **{"retry-after-ms": "600000"}), Reply(json=openai_completion()))
    router = make_router(cfg(upstream), max_retry_after_s=20.0)
    with pytest.raises(UpstreamFailed, match="HTTP 429") as info:
        await router.chat(router.resolve("m"), chat_body(), "r")
    assert len(upstream.calls(CHAT)) == 1
    assert info.value.headers["Retry-After"] == "600"        # the client learns how long to wait


async def test_connection_dropped_before_the_answer_is_retried(make_router: Build,
                                                               upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, Reply(drop_after=0), Reply(json=openai_completion("ok")))
    router = make_router(cfg(upstream))
    result = await router.chat(router.resolve("m"), chat_body(), "r")
    assert result["choices"][0]["message"]["content"] == "ok" and len(upstream.calls(CHAT)) == 2


async def test_stream_failing_before_its_first_chunk_is_retried(make_router: Build,
                                                                upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(500), Reply(sse=openai_sse(["hi"])))
    router = make_router(cfg(upstream))
    chunks = [c async for c in router.chat_stream(router.resolve("m"), chat_body(stream=True), "r")]
    assert chunks[1]["choices"][0]["delta"]["content"] == "hi" and len(upstream.calls(CHAT)) == 2


async def test_stream_is_never_retried_after_its_first_chunk(make_router: Build,
                                                             upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, Reply(sse=openai_sse(["a", "b", "c"]), drop_after=2), Reply(sse=openai_sse(["x"])))
    router = make_router(cfg(upstream))
    seen = []
    with pytest.raises(StreamInterrupted) as info:
        async for chunk in router.chat_stream(router.resolve("m"), chat_body(stream=True), "r"):
            seen.append(chunk)
    assert len(seen) == 2 and len(upstream.calls(CHAT)) == 1
    assert info.value.provider == "oa"


async def test_exhausted_retries_fail_over_to_the_fallback_provider(make_router: Build,
                                                                    upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(500))
    upstream.script(BACKUP_CHAT, Reply(json=openai_completion("from backup", model="backup-model")))
    observer = RecordingObserver()
    router = make_router(cfg(upstream, models=("gpt-4o",), max_retries=1, fallback="backup"),
                         cfg(upstream, "backup", "/backup", models=("backup-model",)), observer=observer)
    trace = UpstreamTrace()
    result = await router.chat(router.resolve("gpt-4o"), chat_body(model="gpt-4o"), "r", trace=trace)
    assert result["choices"][0]["message"]["content"] == "from backup"
    assert len(upstream.calls(CHAT)) == 2
    assert upstream.calls(BACKUP_CHAT)[0].json["model"] == "backup-model"    # fallback's own model
    assert (trace.provider, trace.upstream_model, trace.failed_over) == ("backup", "backup-model", True)
    assert ("oa", "failover") in observer.retries


async def test_client_errors_do_not_fail_over(make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(422, "bad schema"))
    router = make_router(cfg(upstream, fallback="backup"), cfg(upstream, "backup", "/backup"))
    with pytest.raises(UpstreamRejected) as info:
        await router.chat(router.resolve("m"), chat_body(), "r")
    assert info.value.status == 422 and upstream.calls(BACKUP_CHAT) == []


async def test_breaker_opens_after_consecutive_failures_then_half_opens(make_router: Build,
                                                                        upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(500), err(500), Reply(json=openai_completion("recovered")))
    clock = FakeClock()
    router = make_router(cfg(upstream, max_retries=0, breaker_failures=2, breaker_reset_s=30), clock=clock)
    for _ in range(2):
        with pytest.raises(UpstreamFailed):
            await router.chat(router.resolve("m"), chat_body(), "r")
    assert router.breaker_states() == {"oa": "open"} and not router.ready
    with pytest.raises(UpstreamFailed, match="circuit breaker open") as info:
        await router.chat(router.resolve("m"), chat_body(), "r")
    assert info.value.headers["Retry-After"] == "30"
    assert len(upstream.calls(CHAT)) == 2                    # the open breaker kept the call local
    clock.now += 30
    assert router.breaker_states() == {"oa": "half_open"}
    result = await router.chat(router.resolve("m"), chat_body(), "r")
    assert result["choices"][0]["message"]["content"] == "recovered"
    assert router.breaker_states() == {"oa": "closed"} and len(upstream.calls(CHAT)) == 3


async def test_open_breaker_sends_traffic_straight_to_the_fallback(make_router: Build,
                                                                   upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(500))
    upstream.script(BACKUP_CHAT, Reply(json=openai_completion("backup")))
    router = make_router(cfg(upstream, max_retries=0, breaker_failures=1, fallback="backup"),
                         cfg(upstream, "backup", "/backup"))
    await router.chat(router.resolve("m"), chat_body(), "r")             # opens the primary's breaker
    await router.chat(router.resolve("m"), chat_body(), "r")
    assert len(upstream.calls(CHAT)) == 1 and len(upstream.calls(BACKUP_CHAT)) == 2


async def test_read_timeout_becomes_upstream_timeout_without_retry(make_router: Build,
                                                                   upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, Reply(json=openai_completion(), delay_s=0.6))
    router = make_router(cfg(upstream, read_timeout_s=0.15))
    with pytest.raises(UpstreamTimeout) as info:
        await router.chat(router.resolve("m"), chat_body(), "r")
    assert (info.value.status, info.value.error_code) == (504, "PROXY_UPSTREAM_TIMEOUT")
    assert "'oa'" in info.value.detail and len(upstream.calls(CHAT)) == 1


async def test_stream_stalling_after_its_first_chunk_is_interrupted(make_router: Build,
                                                                    upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, Reply(sse=openai_sse(["a", "b"]), frame_delay_s=0.6))
    router = make_router(cfg(upstream, read_timeout_s=0.15))
    with pytest.raises(StreamInterrupted, match="no data"):
        async for _ in router.chat_stream(router.resolve("m"), chat_body(stream=True), "r"):
            pass


async def test_persistent_500_is_upstream_failed_naming_provider_and_last_error(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(500, "internal meltdown"))
    router = make_router(cfg(upstream))
    with pytest.raises(UpstreamFailed) as info:
        await router.chat(router.resolve("m"), chat_body(), "r")
    e = info.value
    assert (e.status, e.error_code) == (502, "PROXY_UPSTREAM_FAILED")
    assert "'oa'" in e.detail and "HTTP 500: internal meltdown" in e.detail
    assert len(upstream.calls(CHAT)) == 3                     # max_retries=2


async def test_unreachable_upstream_is_retried_then_upstream_failed(make_router: Build) -> None:
    dead = ProviderConfig(name="dead", kind="openai", base_url="http://127.0.0.1:9/v1", api_key=KEY)
    sleep = RecordingSleep()
    router = make_router(dead, sleep=sleep)
    with pytest.raises(UpstreamFailed, match="cannot connect"):
        await router.chat(router.resolve("m"), chat_body(), "r")
    assert len(sleep.delays) == 2


async def test_api_key_never_appears_in_error_details(make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(400, f"Unsupported parameter for key {KEY}"))
    upstream.script(BACKUP_CHAT, err(503, f"key {KEY} is over quota"))
    router = make_router(cfg(upstream, "oa"), cfg(upstream, "backup", "/backup", max_retries=0))
    with pytest.raises(UpstreamRejected) as rejected:
        await router.chat(router.resolve("oa/m"), chat_body(), "r")
    with pytest.raises(UpstreamFailed) as failed:
        await router.chat(router.resolve("backup/m"), chat_body(), "r")
    for exc in (rejected.value, failed.value):
        rendered = str(exc.problem("/v1/chat/completions", "r", "t")) + str(exc) + repr(exc.__cause__)
        assert KEY not in rendered and "***" in exc.detail


async def test_upstream_refusing_our_credentials_is_a_502_and_fails_over(make_router: Build,
                                                                         upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(401, f"Incorrect API key provided: {KEY}"))
    upstream.script(BACKUP_CHAT, Reply(json=openai_completion()))
    router = make_router(cfg(upstream, "oa", fallback="backup"), cfg(upstream, "backup", "/backup"))
    assert (await router.chat(router.resolve("oa/m"), chat_body(), "r"))["choices"]
    upstream.script(CHAT, err(403, f"Incorrect API key provided: {KEY}"))
    alone = make_router(cfg(upstream, "oa"))
    with pytest.raises(UpstreamFailed) as failed:
        await alone.chat(alone.resolve("oa/m"), chat_body(), "r")
    assert failed.value.status == 502 and "credentials" in failed.value.detail and KEY not in failed.value.detail


async def test_abandoned_stream_releases_its_connection(make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, Reply(sse=openai_sse(["a", "b", "c"]), frame_delay_s=0.05), Reply(json=openai_completion()))
    router = make_router(cfg(upstream))
    stream = router.chat_stream(router.resolve("m"), chat_body(stream=True), "r")
    first = await anext(stream)
    await stream.aclose()                                     # the client went away
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert router.breaker_states() == {"oa": "closed"}
    await asyncio.wait_for(router.chat(router.resolve("m"), chat_body(), "r"), 5)


async def test_cancelled_half_open_trial_frees_the_breaker_for_the_next_call(
        make_router: Build, upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(500), Reply(json=openai_completion(), delay_s=0.5), Reply(json=openai_completion()))
    clock = FakeClock()
    router = make_router(cfg(upstream, max_retries=0, breaker_failures=1, breaker_reset_s=5), clock=clock)
    with pytest.raises(UpstreamFailed):
        await router.chat(router.resolve("m"), chat_body(), "r")
    clock.now += 5
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(router.chat(router.resolve("m"), chat_body(), "r"), 0.1)
    result = await router.chat(router.resolve("m"), chat_body(), "r")
    assert result["object"] == "chat.completion"


async def test_failed_failover_names_every_provider_and_its_last_error(make_router: Build,
                                                                       upstream: ScriptedUpstream) -> None:
    upstream.script(CHAT, err(500, "primary down"))
    upstream.script(BACKUP_CHAT, Reply(json=openai_completion(), delay_s=0.6))
    router = make_router(cfg(upstream, max_retries=0, fallback="backup"),
                         cfg(upstream, "backup", "/backup", read_timeout_s=0.15))
    with pytest.raises(UpstreamTimeout) as info:                  # the last provider's error decides
        await router.chat(router.resolve("m"), chat_body(), "r")
    assert "provider 'oa': HTTP 500: primary down" in info.value.detail
    assert "provider 'backup': no data for 0.15s" in info.value.detail
