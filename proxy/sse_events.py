"""An incremental parser of server-sent events (the WHATWG event-stream format), fed raw chunks.

Chunks may split a line, a multi-byte UTF-8 character or a CRLF pair anywhere; lines end with CRLF,
LF or CR; an event ends at a blank line; `:` starts a comment; the fields kept are `event`, `id` and
`data` (several data lines join with newlines). Parsing whole chunks instead of awaiting one line at
a time keeps a relayed stream's cost per chunk, not per line.
"""
from __future__ import annotations

import codecs
import re

Event = tuple[str, "str | None", str]          # (event type, id, data)

_LINE_END = re.compile(r"\r\n|\r|\n")


class SseParser:
    __slots__ = ("_decoder", "_line", "_cr", "_event", "_id", "_data")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._line = ""              # the unfinished last line
        self._cr = False             # the text so far ended with CR: a LF right after it is the same line end
        self._event = "message"
        self._id: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by `chunk`."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._cr and text[0] == "\n":
            text = text[1:]
        self._cr = text.endswith("\r")
        lines = _LINE_END.split(self._line + text)
        self._line = lines.pop()
        out: list[Event] = []
        for line in lines:
            self._take(line, out)
        return out

    def close(self) -> list[Event]:
        """The stream ended: the last line and the last event, even without their terminators."""
        out: list[Event] = []
        rest = self._line + self._decoder.decode(b"", final=True)
        self._line = ""
        if rest:
            self._take(rest, out)
        if self._data:
            out.append((self._event, self._id, "\n".join(self._data)))
            self._event, self._id, self._data = "message", None, []
        return out

    def _take(self, line: str, out: list[Event]) -> None:
        if not line:
            if self._data:
                out.append((self._event, self._id, "\n".join(self._data)))
            self._event, self._id, self._data = "message", None, []
            return
        if line[0] == ":":
            return
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
