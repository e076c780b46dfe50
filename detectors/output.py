"""Streaming output scanning: PII, secrets, system-prompt leakage and canary tokens.

One Hyperscan STREAM-mode database, compiled once per :class:`OutputScanner`, holds
cheap candidate shapes for the configured PII types, the secrets rules (prefilter
form) and the canary pattern ``cmcanary-<16 hex>``. Each response gets an
:class:`OutputSession` with its own Hyperscan stream, so a match split across SSE
chunks is still seen. Candidate spans are validated on a bounded tail of the output
(Presidio recognizers via :class:`~detectors.pii.PiiDetector`, the secrets post-checks
via :class:`~detectors.secrets.SecretsDetector`) once the text has moved
``settle_chars`` past them (or at :meth:`OutputSession.close`), so a card number is
Luhn-checked on its full digits, never on a prefix. Secrets findings of kind "identifier"
(ARNs, bucket endpoints: infrastructure names, not credentials) are reported with kind
``"identifier"``, apart from ``"secret"``.

System-prompt leakage: the request's system prompt is reduced to hashes of its word
8-gram shingles when the session opens (no per-request compile). Output words are
hashed incrementally in the same way; when ``leak_shingles`` consecutive-or-not
shingles of the prompt appear, one ``system_prompt_leak`` finding spans them.
"""

from __future__ import annotations

import bisect
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import hyperscan

from . import _hs
from .pii import PiiDetector
from .secrets import SecretsDetector, _hyperscan_form

__all__ = [
    "CANARY_PATTERN",
    "STREAM_PII_TYPES",
    "OutputFinding",
    "OutputScanner",
    "OutputSession",
]

CANARY_PATTERN = r"cmcanary-[0-9a-f]{16}"
_CANARY_LEN = len("cmcanary-") + 16

# Candidate shapes per PII type: (pattern, longest reach back from a match end).
_PII_SHAPES: dict[str, tuple[str, int]] = {
    "EMAIL_ADDRESS": (r"[A-Za-z0-9._%+\-]@[A-Za-z0-9\-]+\.[A-Za-z]{2}", 8),
    "PHONE_NUMBER": (r"\d(?:[\s().\-/]{0,3}\d){6}", 40),
    "CREDIT_CARD": (r"\d(?:[ \-]?\d){11}", 40),
    "IBAN_CODE": (r"[A-Za-z]{2}\d{2}[ \-]?[A-Za-z0-9]{4}", 12),
    "US_SSN": (r"\d{3}[\- .]\d{2}[\- .]\d{4}", 11),
    "IP_ADDRESS": (
        r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d|[0-9A-Fa-f]{0,4}::?[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{0,4}",
        40,
    ),
    "URL": (r"(?:https?://|www\.)[A-Za-z0-9]", 8),
    "US_ITIN": (r"9\d{2}[\- ]?\d{2}[\- ]?\d{4}", 11),
    "CRYPTO": (r"(?:bc1|[13])[A-Za-z0-9]{25}", 28),
    "MAC_ADDRESS": (r"[0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}", 8),
    "UK_NHS": (r"\d{3}[\- ]?\d{3}[\- ]?\d{4}", 12),
}
#: PII types scanned in responses unless told otherwise.
STREAM_PII_TYPES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
)

_KIND_PII, _KIND_SECRET, _KIND_CANARY = 0, 1, 2
_WORD = re.compile(r"[^\W_]+")
_SHINGLE = 8


@dataclass(frozen=True, slots=True)
class OutputFinding:
    """A finding in the response; ``start``/``end`` are character offsets in the whole output so far."""

    kind: str  # "pii" | "secret" | "identifier" | "system_prompt_leak" | "canary"
    type: str
    start: int
    end: int


def _shingle_hashes(words: list[str], n: int) -> set[int]:
    return {hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)}


class OutputScanner:
    """Compiled once; :meth:`open` a session per response."""

    def __init__(
        self,
        pii_types: Iterable[str] = STREAM_PII_TYPES,
        secrets: bool = True,
        *,
        pii_detector: PiiDetector | None = None,
        secrets_detector: SecretsDetector | None = None,
        tail_chars: int = 8192,
        settle_chars: int = 48,
        leak_shingles: int = 3,
    ) -> None:
        self.pii_types = tuple(pii_types)
        unknown = [t for t in self.pii_types if t not in _PII_SHAPES]
        if unknown:
            raise ValueError(f"PII types without a stream shape: {unknown}")
        self.tail_chars = tail_chars
        self.settle_chars = settle_chars
        self.leak_shingles = leak_shingles
        self.pii = pii_detector or (
            PiiDetector(entities=self.pii_types) if self.pii_types else None
        )
        self.secrets = (secrets_detector or SecretsDetector()) if secrets else None
        patterns: list[bytes] = []
        flags: list[int] = []
        # Per pattern id: (kind, reach back from a match end).
        self._meta: list[tuple[int, int]] = []
        for t in self.pii_types:
            pattern, back = _PII_SHAPES[t]
            patterns.append(pattern.encode())
            flags.append(0)
            self._meta.append((_KIND_PII, back))
        if self.secrets is not None:
            for rule in self.secrets.rules:
                patterns.append(_hyperscan_form(rule.pattern).encode())
                flags.append(
                    hyperscan.HS_FLAG_PREFILTER
                    | (hyperscan.HS_FLAG_CASELESS if rule.caseless else 0)
                )
                # A prefilter match says "this rule matched by here"; the secret can start far back.
                self._meta.append((_KIND_SECRET, 512))
        patterns.append(CANARY_PATTERN.encode())
        flags.append(0)
        self._meta.append((_KIND_CANARY, _CANARY_LEN))
        self._db = _hs.compile_stream(patterns, flags)

    def open(
        self, system_prompt: str | None = None, canary: str | None = None
    ) -> OutputSession:
        """A new session for one response."""
        return OutputSession(self, system_prompt, canary)

    def scan_text(
        self, text: str, system_prompt: str | None = None, canary: str | None = None
    ) -> list[OutputFinding]:
        """Scan a complete (non-streamed) response."""
        session = self.open(system_prompt, canary)
        return session.feed(text) + session.close()


class OutputSession:
    """Incremental scanner for one response; not thread-safe."""

    def __init__(
        self, scanner: OutputScanner, system_prompt: str | None, canary: str | None
    ) -> None:
        self._sc = scanner
        self._canary = canary
        # Recent chunks as (character offset, text); the oldest kept starts at _tail_start.
        self._parts: deque[tuple[int, str]] = deque()
        self._tail_start = 0
        self._chars = 0  # characters seen
        self._bytes = 0  # UTF-8 bytes seen
        # True while every chunk was ASCII (byte offsets are then character offsets).
        self._ascii = True
        # Byte and character offsets of the kept chunks' starts (parallel, for bisect).
        self._mark_bytes: list[int] = []
        self._mark_chars: list[int] = []
        # kind -> [start, end] of the unsettled candidate region.
        self._pending: dict[int, list[int]] = {}
        self._reported: set[tuple[str, str, int, int]] = set()
        self._hits: list[tuple[int, int]] = []
        self._closed = False
        # Trim the kept chunks only once they exceed the tail by a margin (amortised).
        self._trim_at = scanner.tail_chars + max(1024, scanner.tail_chars // 4)
        # The binding does not keep its own reference to the handler: hold the bound
        # method here, or the stream calls into a freed object.
        self._handler = self._on_match
        self._stream = scanner._db.stream(match_event_handler=self._handler)
        self._stream.__enter__()
        # System-prompt shingles.
        words = [w.lower() for w in _WORD.findall(system_prompt or "")]
        self._n = min(_SHINGLE, len(words))
        self._prompt_shingles = (
            _shingle_hashes(words, self._n) if self._n >= 4 else set()
        )
        self._prompt_words = frozenset(words) if self._prompt_shingles else frozenset()
        self._need = min(scanner.leak_shingles, len(self._prompt_shingles))
        # The last words of the current run of output words that all occur in the prompt.
        self._window: deque[str] = deque(maxlen=max(self._n, 1))
        self._partial = ""  # an unfinished word at the end of the last chunk
        self._partial_start = 0
        self._leak_hits = 0
        self._leak_span: tuple[int, int] | None = None
        self._leak_reported = False

    # -- Hyperscan --------------------------------------------------------------------
    def _on_match(
        self, pid: int, start: int, end: int, flags: int, ctx: object
    ) -> None:
        self._hits.append((pid, end))

    def _char_at(self, byte_off: int) -> int:
        """Character offset of a byte offset inside the recent output."""
        if self._ascii:
            return byte_off
        i = bisect.bisect_right(self._mark_bytes, byte_off) - 1
        if i < 0:
            return self._mark_chars[0]
        b0, c0 = self._mark_bytes[i], self._mark_chars[i]
        if byte_off == b0:
            return c0
        segment = self._text(c0, self._chars).encode("utf-8", "replace")[
            : byte_off - b0
        ]
        return c0 + len(segment.decode("utf-8", "ignore"))

    def _text(self, lo: int, hi: int) -> str:
        """Output characters ``[lo, hi)`` (clipped to the kept tail)."""
        pieces = []
        for start, chunk in self._parts:
            end = start + len(chunk)
            if end <= lo:
                continue
            if start >= hi:
                break
            pieces.append(chunk[max(0, lo - start) : hi - start])
        return "".join(pieces)

    # -- public API -------------------------------------------------------------------
    def feed(self, delta: str) -> list[OutputFinding]:
        """Scan the next piece of output; findings are reported once, when settled."""
        if self._closed:
            raise RuntimeError("session closed")
        if not delta:
            return []
        data = delta.encode("utf-8", "replace")
        start_char = self._chars
        self._mark_bytes.append(self._bytes)
        self._mark_chars.append(start_char)
        if self._ascii and len(data) != len(delta):
            self._ascii = False
        self._parts.append((start_char, delta))
        self._chars += len(delta)
        self._bytes += len(data)
        hits = self._hits
        self._stream.scan(data)
        found: list[OutputFinding] = []
        if hits:
            self._note_hits(found)
            hits.clear()
        if self._prompt_shingles:
            self._feed_words(delta, start_char, found)
        if self._pending:
            self._settle(found, final=False)
        if self._chars - self._tail_start > self._trim_at:
            self._trim()
        return found

    def pending_from(self) -> int | None:
        """Character offset where the earliest unsettled candidate region begins, or None.

        A relay that must not emit anything a later finding could cover holds back output from
        here on (plus a fixed window for matches Hyperscan has not completed yet)."""
        if not self._pending:
            return None
        return min(region[0] for region in self._pending.values())

    def close(self) -> list[OutputFinding]:
        """Finish the response: validate what is still pending and release the stream."""
        if self._closed:
            return []
        self._closed = True
        self._hits.clear()
        self._stream.close()
        found: list[OutputFinding] = []
        if self._hits:
            self._note_hits(found)
        if self._prompt_shingles and self._partial:
            self._consume([self._partial], self._partial, self._partial_start, found)
            self._partial = ""
        self._settle(found, final=True)
        return found

    # -- candidates -------------------------------------------------------------------
    def _note_hits(self, found: list[OutputFinding]) -> None:
        meta = self._sc._meta
        for pid, end_byte in self._hits:
            kind, back = meta[pid]
            end = self._char_at(end_byte)
            if kind == _KIND_CANARY:
                start = max(0, end - _CANARY_LEN)
                value = self._text(start, end)
                if self._canary is None or value == self._canary:
                    self._report(found, "canary", "canary", start, end)
                continue
            start = max(self._tail_start, end - back)
            region = self._pending.get(kind)
            if region is None:
                self._pending[kind] = [start, end]
            else:
                region[0] = min(region[0], start)
                region[1] = max(region[1], end)

    def _settle(self, found: list[OutputFinding], *, final: bool) -> None:
        for kind in list(self._pending):
            lo, hi = self._pending[kind]
            if not final and self._chars - hi < self._sc.settle_chars:
                continue
            del self._pending[kind]
            # Validate on the region widened to whitespace on both sides.
            wlo = max(self._tail_start, lo - self._sc.settle_chars)
            whi = min(self._chars, hi + self._sc.settle_chars)
            text = self._text(wlo, whi)
            if kind == _KIND_PII and self._sc.pii is not None:
                for f in self._sc.pii.scan(text):
                    if (
                        wlo + f.end > lo
                        and wlo + f.start < hi
                        and (final or wlo + f.end < whi)
                    ):
                        self._report(
                            found, "pii", f.entity_type, wlo + f.start, wlo + f.end
                        )
            elif kind == _KIND_SECRET and self._sc.secrets is not None:
                for s in self._sc.secrets.scan(text):
                    if (
                        wlo + s.end > lo
                        and wlo + s.start < hi
                        and (final or wlo + s.end < whi)
                    ):
                        self._report(
                            found,
                            "identifier" if s.kind == "identifier" else "secret",
                            s.secret_type,
                            wlo + s.start,
                            wlo + s.end,
                        )

    def _report(
        self, found: list[OutputFinding], kind: str, type_: str, start: int, end: int
    ) -> None:
        key = (kind, type_, start, end)
        if key not in self._reported:
            self._reported.add(key)
            found.append(OutputFinding(kind, type_, start, end))

    def _trim(self) -> None:
        keep_from = self._chars - self._sc.tail_chars
        for lo, _ in self._pending.values():
            keep_from = min(keep_from, lo - self._sc.settle_chars)
        parts = self._parts
        # Drop whole chunks that end before keep_from (always keep the newest one).
        dropped = 0
        while len(parts) > 1 and parts[0][0] + len(parts[0][1]) <= keep_from:
            parts.popleft()
            dropped += 1
        if dropped:
            del self._mark_bytes[:dropped]
            del self._mark_chars[:dropped]
        self._tail_start = parts[0][0]

    # -- system-prompt leakage ----------------------------------------------------------
    def _feed_words(self, delta: str, offset: int, found: list[OutputFinding]) -> None:
        text = self._partial + delta if self._partial else delta
        base = self._partial_start if self._partial else offset
        words = _WORD.findall(text)
        self._partial = ""
        if words and text[-1].isalnum():  # the last word may continue in the next chunk
            last = words.pop()
            self._partial = last
            self._partial_start = base + len(text) - len(last)
        self._consume(words, text, base, found)

    def _consume(
        self, words: list[str], text: str, base: int, found: list[OutputFinding]
    ) -> None:
        """Advance the run of prompt words; ``words`` are the complete words of ``text`` (at ``base``)."""
        prompt_words = self._prompt_words
        shingles = self._prompt_shingles
        window = self._window
        n = self._n
        for i, word in enumerate(words):
            word = word.lower()
            if word in prompt_words:
                window.append(word)
                if len(window) == n and hash(tuple(window)) in shingles:
                    self._shingle_hit(text, base, i, found)
            elif window:
                window.clear()

    def _shingle_hit(
        self, text: str, base: int, i: int, found: list[OutputFinding]
    ) -> None:
        """Word ``i`` of ``text`` completed a prompt shingle: offsets are computed only now."""
        spans = [m.span() for m in _WORD.finditer(text)]
        end = base + spans[i][1]
        self._leak_hits += 1
        if self._leak_span is None:
            back = self._n - 1
            if i >= back:
                start = base + spans[i - back][0]
            else:  # the shingle began in earlier chunks
                lo = max(self._tail_start, base - 4096)
                before = [m.start() for m in _WORD.finditer(self._text(lo, base))]
                need = back - i
                start = lo + before[-need] if len(before) >= need else lo
            self._leak_span = (start, end)
        else:
            self._leak_span = (self._leak_span[0], end)
        if not self._leak_reported and self._leak_hits >= self._need:
            self._leak_reported = True
            self._report(found, "system_prompt_leak", "verbatim", *self._leak_span)
