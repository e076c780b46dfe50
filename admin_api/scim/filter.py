"""SCIM filter expressions (RFC 7644 section 3.4.2.2), parsed once per request and evaluated on resources.

Supported: `eq ne co sw ew gt ge lt le pr`, `and` / `or` / `not (...)`, parentheses, attribute
paths with sub-attributes (`name.givenName`, `meta.lastModified`), schema-URN prefixes, and value
filters on multi-valued attributes (`emails[type eq "work" and value co "@example.com"]`).
String comparisons ignore case (every attribute we serve is caseExact=false except `id`).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(r'\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<lb>\[)|(?P<rb>\])|(?P<str>"(?:[^"\\]|\\.)*")'
                    r'|(?P<word>[A-Za-z0-9_:.$\-+]+))')
_OPS = frozenset(("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"))
MAX_FILTER = 2000
_CORE_URNS = ("urn:ietf:params:scim:schemas:core:2.0:user:", "urn:ietf:params:scim:schemas:core:2.0:group:")


class FilterError(ValueError):
    """The filter does not parse (SCIM `invalidFilter`)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterError(f"unexpected character at {pos}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def raw_attr_path(raw: str) -> list[str]:
    """`urn:...:User:name.givenName` -> ["name", "givenName"] (the client's case kept)."""
    text = raw
    for urn in _CORE_URNS:
        if text.lower().startswith(urn):
            text = text[len(urn):]
    if text.lower().startswith("urn:"):
        text = text.rsplit(":", 1)[-1]
    return [p for p in text.split(".") if p]


def attr_path(raw: str) -> list[str]:
    """`urn:...:User:name.givenName` -> ["name", "givenname"] (lower-cased, for matching)."""
    return [p.lower() for p in raw_attr_path(raw)]


def _lookup(value: Any, path: list[str]) -> list[Any]:
    """Every value at `path` (multi-valued attributes flatten)."""
    values = [value]
    for name in path:
        nxt: list[Any] = []
        for v in values:
            if isinstance(v, list):
                for item in v:
                    if isinstance(item, Mapping):
                        nxt.extend(_get(item, name))
            elif isinstance(v, Mapping):
                nxt.extend(_get(v, name))
        values = nxt
    flat: list[Any] = []
    for v in values:
        if isinstance(v, list):
            flat.extend(v)
        else:
            flat.append(v)
    return [v for v in flat if v is not None]


def _get(obj: Mapping[str, Any], name: str) -> list[Any]:
    for k, v in obj.items():
        if k.lower() == name:
            return [v]
    return []


def _literal(kind: str, raw: str) -> Any:
    if kind == "str":
        return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    try:
        return float(raw) if "." in raw else int(raw)
    except ValueError:
        raise FilterError(f"bad value {raw!r}") from None


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if isinstance(actual, Mapping):
        actual = actual.get("value")
    if isinstance(actual, str) and isinstance(expected, str):
        a, e = actual.lower(), expected.lower()
    elif isinstance(actual, bool) or isinstance(expected, bool):
        if op in ("eq", "ne"):
            return (actual == expected) == (op == "eq")
        return False
    else:
        a, e = actual, expected
    try:
        if op == "eq":
            return bool(a == e)
        if op == "ne":
            return bool(a != e)
        if op == "co":
            return isinstance(a, str) and e in a
        if op == "sw":
            return isinstance(a, str) and a.startswith(e)
        if op == "ew":
            return isinstance(a, str) and a.endswith(e)
        if op == "gt":
            return bool(a > e)
        if op == "ge":
            return bool(a >= e)
        if op == "lt":
            return bool(a < e)
        return bool(a <= e)
    except TypeError:
        return False


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda r: a(r) or b(r)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda r: a(r) and b(r)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise FilterError("the filter ends too early")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "word" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def parse_or(self) -> Predicate:
        left = self.parse_and()
        while self.keyword("or"):
            right = self.parse_and()
            left = _either(left, right)
        return left

    def parse_and(self) -> Predicate:
        left = self.parse_not()
        while self.keyword("and"):
            right = self.parse_not()
            left = _both(left, right)
        return left

    def parse_not(self) -> Predicate:
        if self.keyword("not"):
            inner = self.parse_group()
            return lambda r: not inner(r)
        return self.parse_group()

    def parse_group(self) -> Predicate:
        tok = self.peek()
        if tok is not None and tok[0] == "lp":
            self.take()
            inner = self.parse_or()
            if self.take()[0] != "rp":
                raise FilterError("missing )")
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        kind, raw = self.take()
        if kind != "word":
            raise FilterError(f"expected an attribute, got {raw!r}")
        path = attr_path(raw)
        nxt = self.peek()
        if nxt is not None and nxt[0] == "lb":
            self.take()
            inner = self.parse_or()
            if self.take()[0] != "rb":
                raise FilterError("missing ]")
            sub: list[str] = []
            after = self.peek()
            if after is not None and after[0] == "word" and after[1].startswith("."):
                sub = attr_path(self.take()[1][1:])

            def value_filter(r: Mapping[str, Any], path: list[str] = path, inner: Predicate = inner) -> bool:
                items = _lookup(r, path)
                return any(isinstance(item, Mapping) and inner(item) for item in items)

            if sub:
                raise FilterError("a sub-attribute after a value filter is not supported in filters")
            return value_filter
        op_kind, op = self.take()
        op = op.lower()
        if op_kind != "word" or (op not in _OPS and op != "pr"):
            raise FilterError(f"unknown operator {op!r}")
        if op == "pr":
            return lambda r: bool([v for v in _lookup(r, path) if v not in ("", [], {})])
        value_kind, value_raw = self.take()
        if value_kind not in ("str", "word"):
            raise FilterError(f"expected a value, got {value_raw!r}")
        expected = _literal(value_kind, value_raw)
        if op == "eq" and expected is None:
            return lambda r: not _lookup(r, path)
        if op == "ne":
            return lambda r: not any(_compare("eq", v, expected) for v in _lookup(r, path))
        return lambda r: any(_compare(op, v, expected) for v in _lookup(r, path))


def parse_filter(text: str) -> Predicate:
    """A predicate over SCIM resource documents; FilterError when the text is not a valid filter."""
    if len(text) > MAX_FILTER:
        raise FilterError("the filter is too long")
    parser = _Parser(_tokens(text))
    predicate = parser.parse_or()
    if parser.peek() is not None:
        raise FilterError(f"unexpected {parser.peek()[1]!r}")  # type: ignore[index]
    return predicate
