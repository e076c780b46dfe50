"""Secrets detector: provider key formats and generic credential assignments.

All rules (:mod:`detectors.rules.secrets_rules`) live in one Hyperscan block-mode
database compiled in prefilter mode: one pass over the text says which rules can
match and where their matches end. Only those rules then run their exact Python
regex, and only on windows reaching back ``rule.reach`` characters from those ends
(so a busy rule costs in proportion to its hits, not to the text), and every candidate goes
through cheap post-checks (placeholder rejection, variable references, character-class
mix, Shannon entropy). Overlapping findings keep the most confident rule.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import hyperscan
import numpy as np

from . import _hs
from .operators import resolve_overlaps
from .rules.secrets_rules import RULES, SecretRule

__all__ = [
    "SecretFinding",
    "SecretsDetector",
    "looks_like_placeholder",
    "shannon_entropy",
]

#: Substrings that mark a documentation placeholder rather than a real credential.
_PLACEHOLDER_WORDS = (
    "xxxx",
    "example",
    "your_",
    "your-",
    "yourkey",
    "yourtoken",
    "yoursecret",
    "yourpassword",
    "placeholder",
    "insert",
    "redacted",
    "dummy",
    "sample",
    "<",
    ">",
    "...",
    "***",
    "replace_me",
    "replaceme",
    "changeit",
    "not-set",
    "notset",
    "todo",
    "replace_with",
    "replace-with",
)
_FILLER_RUN = re.compile(r"([xX*.#0•])\1{5,}")
# Values a password-like name is often assigned without being a secret.
_NON_SECRET_VALUES = frozenset(
    {
        "password",
        "passwd",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "required",
        "optional",
        "string",
        "empty",
        "hidden",
        "masked",
        "default",
        "value",
        "secret",
        "token",
        "pass",
        "changeme",
        "username",
        "user",
    }
)
_REFERENCE = re.compile(
    r"^(?:\$|%|\{|@|&|\(|\[|process\.env|os\.environ|os\.getenv|getenv|env\.|ENV\[|config\.|settings\.|self\.|this\.)"
    r"|\{\{|\$\{|\$\(|%\(|%s\b|#\{|^[#/.:]|:$",
    re.IGNORECASE,
)


# An unquoted value that is code, not a literal: a call, an attribute path, a type.
_CODE_LIKE = re.compile(
    r"[()\[\]{}/,]|^[A-Za-z_]\w*\.[A-Za-z_]|^(?:str|int|bool|String|None)$"
)


# A prefilter match may end a little before the exact one (relaxed bounds): verify this far past it.
_SLACK = 320


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """One credential: ``text[start:end]`` is the secret value itself."""

    secret_type: str
    rule_id: str
    start: int
    end: int
    confidence: float

    @property
    def entity_type(self) -> str:
        """Type name used by the anonymisation operators (one policy entry covers all secrets)."""
        return "SECRET"

    @property
    def score(self) -> float:
        return self.confidence


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s character distribution."""
    n = len(value)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def looks_like_placeholder(value: str) -> bool:
    """Documentation filler: "xxxx", "EXAMPLE", "your_api_key", "<token>", "****", one repeated character."""
    low = value.lower()
    if any(w in low for w in _PLACEHOLDER_WORDS):
        return True
    if _FILLER_RUN.search(value):
        return True
    return len(set(value)) <= 2


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PARTS = re.compile(r"[-_./+]+")
_ALPHA = re.compile(r"^[A-Za-z]+$")


def _identifier_like(value: str) -> bool:
    """Words joined by separators ("public_hex", "PASSWORD_DEFAULT/ARGON2ID", "ws-plugin-s3-files")."""
    parts = [p for p in _PARTS.split(value) if p]
    if len(parts) < 2:
        return False
    words = [p for p in parts if _ALPHA.match(p) and len(p) <= 12]
    return len(words) == len(parts) or sum(len(p) >= 3 for p in words) >= 3


def _classes(value: str) -> int:
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def _accept(rule: SecretRule, value: str) -> bool:
    if looks_like_placeholder(value):
        return False
    if rule.check == "format":
        return True
    if rule.check == "bare_password" and _CODE_LIKE.search(value):
        return False
    if rule.check in ("password", "bare_password"):
        return (
            len(value) >= 4
            and value.lower() not in _NON_SECRET_VALUES
            and _REFERENCE.search(value) is None
        )
    # entropy
    if (
        _REFERENCE.search(value)
        or value.lower() in _NON_SECRET_VALUES
        or _EMAIL.match(value)
    ):
        return False
    if _identifier_like(value):
        return False
    if _classes(value) < 2:
        return False
    return shannon_entropy(value) >= rule.min_entropy


def _hyperscan_form(pattern: str) -> str:
    """The rule's pattern without the named group and lazy quantifiers (Hyperscan reports every match)."""
    return (
        re.sub(r"\(\?P<\w+>", "(", pattern)
        .replace("}?", "}")
        .replace("*?", "*")
        .replace("+?", "+")
    )


class SecretsDetector:
    """Credential scanner; build once, call :meth:`scan` per text."""

    def __init__(self, rules: tuple[SecretRule, ...] = RULES) -> None:
        self._rules = rules
        self._compiled = [
            re.compile(r.pattern, re.IGNORECASE if r.caseless else 0) for r in rules
        ]
        flags = [
            hyperscan.HS_FLAG_PREFILTER | (_hs.CASELESS if r.caseless else 0)
            for r in rules
        ]
        self._db = _hs.compile_block([_hyperscan_form(r.pattern) for r in rules], flags)

    @property
    def rules(self) -> tuple[SecretRule, ...]:
        return self._rules

    def scan(self, text: str) -> list[SecretFinding]:
        """Findings ordered by position (non-overlapping)."""
        if not text:
            return []
        data = text.encode("utf-8", "replace")
        ends: dict[int, list[int]] = {}

        def on_match(rid: int, start: int, end: int, flags: int, ctx: object) -> None:
            bucket = ends.get(rid)
            if bucket is None:
                ends[rid] = [end]
            elif end - bucket[-1] > 64:  # nearby ends share a verification window
                bucket.append(end)

        self._db.scan(data, match_event_handler=on_match)
        if not ends:
            return []
        to_char = None
        if len(data) != len(text):
            starts = (np.frombuffer(data, dtype=np.uint8) & 0xC0) != 0x80
            to_char = np.concatenate(([0], np.cumsum(starts)))
        n = len(text)
        candidates: list[SecretFinding] = []
        for rid in sorted(ends):
            rule = self._rules[rid]
            compiled = self._compiled[rid]
            windows: list[list[int]] = []
            for end in ends[rid]:
                end_char = int(to_char[end]) if to_char is not None else end
                lo, hi = max(0, end_char - rule.reach), min(n, end_char + _SLACK)
                if windows and lo <= windows[-1][1]:
                    windows[-1][1] = hi
                else:
                    windows.append([lo, hi])
            seen: set[tuple[int, int]] = set()
            for lo, hi in windows:
                for m in compiled.finditer(text, lo, hi):
                    start, end = m.span(
                        "secret" if "secret" in compiled.groupindex else 0
                    )
                    if end <= start or (start, end) in seen:
                        continue
                    seen.add((start, end))
                    if _accept(rule, text[start:end]):
                        candidates.append(
                            SecretFinding(
                                rule.secret_type,
                                rule.rule_id,
                                start,
                                end,
                                rule.confidence,
                            )
                        )
        return resolve_overlaps(candidates) if len(candidates) > 1 else candidates
