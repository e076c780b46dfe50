"""Anonymisation operators applied to detected spans, and reversible tokenisation.

``apply(text, findings, operators, hmac_key=..., vault=...)`` rewrites ``text``:

* ``redact``      -> ``[REDACTED]`` (or ``redact_with``, e.g. ``""`` to remove);
* ``mask``        -> every letter or digit but the last four becomes ``*`` (separators stay);
* ``hash``        -> ``<TYPE:16 hex>``, a keyed HMAC-SHA256 (stable per key, not reversible);
* ``placeholder`` -> ``<TYPE>``;
* ``tokenize``    -> ``<LABEL_n>`` (``<EMAIL_1>``, ``<PHONE_NUMBER_2>``), the same value
  always getting the same token within one :class:`TokenVault` (one request);
  ``TokenVault.restore`` and :class:`StreamRestorer` put the originals back;
* ``block``       -> text left as is; the type is reported in ``Applied.blocked_types``
  and the caller refuses the request;
* ``keep``        -> left as is.

The operator for a type comes from ``operators[type]``, else ``operators["*"]``, else
``redact``. Overlapping findings are resolved first: highest score wins, then the
longest span, then the earliest.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

__all__ = [
    "OPERATORS",
    "Applied",
    "Finding",
    "Replacement",
    "StreamRestorer",
    "TokenVault",
    "apply",
    "resolve_overlaps",
]

OPERATORS = frozenset(
    {"redact", "mask", "hash", "placeholder", "tokenize", "block", "keep"}
)
_DEFAULT_OPERATOR = "redact"
#: Shorter labels for tokens of a few long type names; others use the type itself.
_TOKEN_LABELS = {"EMAIL_ADDRESS": "EMAIL", "CREDIT_CARD": "CARD", "IP_ADDRESS": "IP"}
_TOKEN = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")
_ALNUM = re.compile(r"[^\W_]")


class Finding(Protocol):
    """What the operators need from a detector finding (``PiiFinding`` and ``SecretFinding`` fit)."""

    @property
    def entity_type(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def score(self) -> float: ...


F = TypeVar("F", bound=Finding)


@dataclass(frozen=True, slots=True)
class Replacement:
    """One rewritten span: ``[start, end)`` of the input became ``text`` (``[new_start, new_end)`` of the output)."""

    entity_type: str
    operator: str
    start: int
    end: int
    new_start: int
    new_end: int
    text: str


@dataclass(frozen=True, slots=True)
class Applied:
    """Result of :func:`apply`."""

    text: str
    replaced: list[Replacement]
    blocked_types: tuple[str, ...]


class TokenVault:
    """Per-request mapping between reversible tokens and the original values."""

    __slots__ = ("_by_token", "_by_value", "_counter", "_prefixes", "max_token_len")

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_token: dict[str, str] = {}
        self._prefixes: set[str] = set()
        self._counter = 0
        self.max_token_len = 0

    def __len__(self) -> int:
        return len(self._by_token)

    def token_for(self, entity_type: str, value: str) -> str:
        """The token of ``value`` (created on first use; the same value keeps its token)."""
        key = (entity_type, value)
        token = self._by_value.get(key)
        if token is None:
            self._counter += 1
            token = f"<{_TOKEN_LABELS.get(entity_type, entity_type)}_{self._counter}>"
            self._by_value[key] = token
            self._by_token[token] = value
            self._prefixes.update(token[:i] for i in range(1, len(token)))
            self.max_token_len = max(self.max_token_len, len(token))
        return token

    def original(self, token: str) -> str | None:
        return self._by_token.get(token)

    def is_partial_token(self, suffix: str) -> bool:
        """True if ``suffix`` is a proper prefix of one of this vault's tokens."""
        return suffix in self._prefixes

    def restore(self, text: str) -> str:
        """``text`` with every known token replaced by its original value."""
        if not self._by_token or "<" not in text:
            return text
        by_token = self._by_token
        return _TOKEN.sub(lambda m: by_token.get(m.group(), m.group()), text)


class StreamRestorer:
    """Restores tokens in a streamed response, including tokens split across chunks.

    Only a suffix that is a proper prefix of a known token (``"<EMA"``) is held back,
    so at most ``vault.max_token_len - 1`` characters wait for the next chunk.
    """

    __slots__ = ("_pending", "_vault")

    def __init__(self, vault: TokenVault) -> None:
        self._vault = vault
        self._pending = ""

    def feed(self, delta: str) -> str:
        """Text that can be emitted now, with tokens restored."""
        buf = self._pending + delta if self._pending else delta
        if not buf:
            return ""
        cut = len(buf)
        vault = self._vault
        if vault.max_token_len:
            lt = buf.rfind("<", max(0, len(buf) - vault.max_token_len + 1))
            if lt >= 0 and vault.is_partial_token(buf[lt:]):
                cut = lt
        self._pending = buf[cut:]
        return vault.restore(buf[:cut])

    def flush(self) -> str:
        """Whatever is still held back (the stream ended inside something token-like)."""
        rest, self._pending = self._pending, ""
        return self._vault.restore(rest)


def resolve_overlaps(findings: Iterable[F]) -> list[F]:
    """Non-overlapping findings in text order: highest score, then longest, then earliest wins.

    Accepted spans are kept sorted, so each candidate is checked against its two
    neighbours only (O(n log n) for n findings).
    """
    ranked = sorted(findings, key=lambda f: (-f.score, -(f.end - f.start), f.start))
    starts: list[int] = []
    kept: list[F] = []  # parallel to ``starts``
    for f in ranked:
        if f.end <= f.start:
            continue
        i = bisect.bisect_left(starts, f.start)
        if i > 0 and kept[i - 1].end > f.start:
            continue
        if i < len(kept) and kept[i].start < f.end:
            continue
        starts.insert(i, f.start)
        kept.insert(i, f)
    return kept


def _mask(value: str, keep: int = 4) -> str:
    positions = [m.start() for m in _ALNUM.finditer(value)]
    hide = positions[:-keep] if len(positions) > keep else positions
    if not hide:
        return value
    chars = list(value)
    for i in hide:
        chars[i] = "*"
    return "".join(chars)


def _hash(entity_type: str, value: str, key: bytes) -> str:
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"<{entity_type}:{digest[:16]}>"


def apply(
    text: str,
    findings: Iterable[Finding],
    operators: Mapping[str, str],
    *,
    hmac_key: bytes,
    vault: TokenVault | None,
    redact_with: str = "[REDACTED]",
) -> Applied:
    """Rewrite ``text`` according to ``operators``; see the module docstring."""
    chosen = resolve_overlaps(findings)
    default = operators.get("*", _DEFAULT_OPERATOR)
    parts: list[str] = []
    replaced: list[Replacement] = []
    blocked: list[str] = []
    pos = 0
    out_len = 0
    for f in chosen:
        op = operators.get(f.entity_type, default)
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r} for {f.entity_type}")
        if op == "block":
            if f.entity_type not in blocked:
                blocked.append(f.entity_type)
            continue
        if op == "keep":
            continue
        value = text[f.start : f.end]
        if op == "redact":
            new = redact_with
        elif op == "mask":
            new = _mask(value)
        elif op == "hash":
            new = _hash(f.entity_type, value, hmac_key)
        elif op == "placeholder":
            new = f"<{f.entity_type}>"
        else:  # tokenize
            if vault is None:
                raise ValueError("the tokenize operator needs a TokenVault")
            new = vault.token_for(f.entity_type, value)
        parts.append(text[pos : f.start])
        out_len += f.start - pos
        parts.append(new)
        replaced.append(
            Replacement(
                f.entity_type, op, f.start, f.end, out_len, out_len + len(new), new
            )
        )
        out_len += len(new)
        pos = f.end
    if not replaced:
        return Applied(text, replaced, tuple(blocked))
    parts.append(text[pos:])
    return Applied("".join(parts), replaced, tuple(blocked))
