"""SSE decoding: the event-stream rules LLM APIs rely on."""
from __future__ import annotations

import aiohttp

from proxy.providers.sse import SSEDecoder, SSEEvent, iter_sse
from tests.providers.scripted import Reply, ScriptedUpstream


def feed_all(lines: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [ev for line in lines if (ev := decoder.feed_line(line)) is not None]
    tail = decoder.flush()
    return events + ([tail] if tail else [])


def test_blank_line_dispatches_one_event_per_data_block() -> None:
    events = feed_all([b"data: one\n", b"\n", b"data: two\n", b"\n"])
    assert events == [SSEEvent("message", b"one"), SSEEvent("message", b"two")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert feed_all([b"data: {\"a\":\n", b"data: 1}\n", b"\n"]) == [SSEEvent("message", b'{"a":\n1}')]


def test_comments_and_unknown_fields_are_ignored() -> None:
    events = feed_all([b": keep-alive\n", b"id: 7\n", b"retry: 100\n", b"data: x\n", b"\n", b":\n", b"\n"])
    assert events == [SSEEvent("message", b"x")]


def test_event_field_names_the_event_and_resets_after_dispatch() -> None:
    events = feed_all([b"event: ping\n", b"data: {}\n", b"\n", b"data: y\n", b"\n"])
    assert events == [SSEEvent("ping", b"{}"), SSEEvent("message", b"y")]


def test_crlf_terminators_are_stripped() -> None:
    assert feed_all([b"data: x\r\n", b"\r\n"]) == [SSEEvent("message", b"x")]


def test_value_without_space_after_colon_is_kept_whole() -> None:
    assert feed_all([b"data:x y\n", b"\n"]) == [SSEEvent("message", b"x y")]


def test_event_without_final_blank_line_is_flushed_at_end_of_stream() -> None:
    assert feed_all([b"data: tail\n"]) == [SSEEvent("message", b"tail")]


async def test_iter_sse_reads_a_real_stream_with_mixed_terminators(upstream: ScriptedUpstream) -> None:
    upstream.script("/sse", Reply(sse=[b"data: a\r\n\r\n", b": comment\n", b"data: b\rdata: c\r\r",
                                       b"event: done\ndata: [DONE]\n\n"]))
    async with aiohttp.ClientSession() as session:
        async with session.post(upstream.url + "/sse") as resp:
            events = [ev async for ev in iter_sse(resp.content)]
    assert events == [SSEEvent("message", b"a"), SSEEvent("message", b"b\nc"), SSEEvent("done", b"[DONE]")]
