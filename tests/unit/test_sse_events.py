"""The incremental SSE parser: the same events however the stream is cut into chunks."""
from __future__ import annotations

import random

from proxy.sse_events import SseParser

STREAM = ("event: message\r\nid: 7\r\ndata: {\"jsonrpc\": \"2.0\", \"id\": 1, \"result\": \"h\u00e9llo \u2603\"}\r\n\r\n"
          ": a comment\n"
          "data: first line\ndata: second line\n\n"
          "event: ping\rdata:no-space\r\r"
          "data: unterminated at the end")
EXPECTED = [("message", "7", '{"jsonrpc": "2.0", "id": 1, "result": "h\u00e9llo \u2603"}'),
            ("message", None, "first line\nsecond line"),
            ("ping", None, "no-space"),
            ("message", None, "unterminated at the end")]


def _parse(chunks: list[bytes]) -> list:
    p = SseParser()
    events = []
    for c in chunks:
        events += p.feed(c)
    return events + p.close()


def test_whole_stream_in_one_chunk() -> None:
    assert _parse([STREAM.encode()]) == EXPECTED


def test_every_split_point_gives_the_same_events() -> None:
    raw = STREAM.encode()
    for cut in range(1, len(raw)):                    # splits CRLF pairs and multi-byte characters too
        assert _parse([raw[:cut], raw[cut:]]) == EXPECTED, cut


def test_random_chunkings_and_byte_by_byte() -> None:
    raw = STREAM.encode()
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(1, 12)))
        parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
        assert _parse(parts) == EXPECTED
    assert _parse([bytes([b]) for b in raw]) == EXPECTED


def test_a_blank_line_without_data_dispatches_nothing_and_resets_the_fields() -> None:
    assert _parse([b"event: x\nid: 1\n\ndata: y\n\n"]) == [("message", None, "y")]
