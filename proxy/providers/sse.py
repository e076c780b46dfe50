"""Server-sent events decoding for upstream streams.

``SSEDecoder`` is a small push parser fed one line at a time (bytes, with or without the line
terminator); it follows the WHATWG event-stream rules that matter to LLM APIs: ``data:`` lines
are joined with ``\\n``, a blank line dispatches, ``:`` lines are comments, ``event:`` names the
event, CRLF / LF / CR all end lines. ``iter_sse`` drives it from an aiohttp ``StreamReader``.
"""
from __future__ import annotations

from typing import AsyncIterator, NamedTuple

from aiohttp import StreamReader

__all__ = ["SSEEvent", "SSEDecoder", "iter_sse"]


class SSEEvent(NamedTuple):
    event: str          # "message" unless an ``event:`` field named it
    data: bytes


MAX_LINE = 4 * 1024 * 1024


class SSEDecoder:
    __slots__ = ("_data", "_event", "_pending", "_after_cr")

    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._event: str | None = None
        self._pending = b""
        self._after_cr = False

    def feed_line(self, line: bytes) -> SSEEvent | None:
        """Feed one line (terminator optional, no CR inside); returns the event it completes."""
        return self._field(_strip_terminator(line))

    def feed(self, raw: bytes) -> tuple[SSEEvent, ...]:
        """Feed what one ``readline`` returned; bare CRs inside it also end lines.
        Returns the events completed (usually none or one)."""
        line = _strip_terminator(raw)
        if b"\r" not in line:
            event = self._field(line)
            return () if event is None else (event,)
        events = []
        for part in line.split(b"\r"):
            event = self._field(part)
            if event is not None:
                events.append(event)
        return tuple(events)

    def feed_bytes(self, raw: bytes) -> list[SSEEvent]:
        """Feed one network read (any size, lines may be split across reads).
        Returns the events it completes, in order."""
        if self._pending:
            raw = self._pending + raw
        if self._after_cr:
            if raw[:1] == b"\n":                  # CRLF split across two reads
                raw = raw[1:]
            self._after_cr = False
        if b"\r" in raw:
            self._after_cr = raw.endswith(b"\r")
            raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = raw.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > MAX_LINE:
            raise ValueError(f"event-stream line longer than {MAX_LINE} bytes")
        events = []
        field = self._field
        for line in lines:
            event = field(line)
            if event is not None:
                events.append(event)
        return events

    def _field(self, line: bytes) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:                     # ":" comment / keep-alive
            return None
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # "id" and "retry" do not matter for a one-shot upstream stream
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = None
            return None
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = self._event or "message"
        self._data = []
        self._event = None
        return SSEEvent(event, data)

    def flush(self) -> SSEEvent | None:
        """End of stream: return an event still waiting for its blank line, if any."""
        if self._pending:
            pending, self._pending = self._pending, b""
            self._field(pending)
        return self._dispatch()


def _strip_terminator(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith((b"\n", b"\r")):
        return line[:-1]
    return line


async def iter_sse(content: StreamReader) -> AsyncIterator[SSEEvent]:
    """Yield events from an aiohttp response body, line by line."""
    decoder = SSEDecoder()
    feed = decoder.feed
    async for raw in content:
        for event in feed(raw):
            yield event
    tail = decoder.flush()
    if tail is not None:
        yield tail
