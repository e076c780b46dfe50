"""A least-recently-used map from texts to detector results, bounded in entries and in characters.

Chat clients resend the whole conversation every turn, so detectors remember the results of
recent texts. A key holds its text, so the map is bounded by the characters it holds as well as
by its entries: unique long messages cannot grow a worker's memory past ``max_chars`` (about one
to four bytes each). Not locked: one map per detector, used from one thread.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["TextLRU"]

V = TypeVar("V")


class TextLRU(Generic[V]):
    """``get`` / ``put`` by text; ``max_entries`` 0 disables it (``get`` misses, ``put`` drops)."""

    __slots__ = ("_data", "_chars", "max_entries", "max_chars", "max_text_chars")

    def __init__(self, max_entries: int, max_chars: int, max_text_chars: int) -> None:
        if max_entries < 0 or max_chars < 0 or max_text_chars < 0:
            raise ValueError("cache bounds must be >= 0")
        self._data: OrderedDict[str, V] = OrderedDict()
        self._chars = 0
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.max_text_chars = min(max_text_chars, max_chars)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, text: object) -> bool:
        return text in self._data

    @property
    def chars(self) -> int:
        """Characters held by the keys."""
        return self._chars

    def get(self, text: str) -> V | None:
        value = self._data.get(text)
        if value is not None:
            self._data.move_to_end(text)
        return value

    def put(self, text: str, value: V) -> None:
        """Remember ``value`` for ``text`` unless the text is too long to keep; evict the oldest."""
        if self.max_entries == 0 or len(text) > self.max_text_chars:
            return
        data = self._data
        if text in data:
            data.move_to_end(text)
            data[text] = value
            return
        data[text] = value
        self._chars += len(text)
        while len(data) > self.max_entries or self._chars > self.max_chars:
            old, _ = data.popitem(last=False)
            self._chars -= len(old)
