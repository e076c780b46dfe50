"""SCIM PATCH (RFC 7644 section 3.5.2): add / replace / remove operations applied to a resource document.

Paths: none (the value is an object of attributes), `attr`, `attr.sub`, schema-URN prefixed paths,
and `attr[filter]` or `attr[filter].sub` on multi-valued attributes (e.g. `members[value eq "id"]`).
The result is validated by the caller as a whole resource, as a PUT would be.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from admin_api.scim.filter import FilterError, parse_filter, raw_attr_path

_FILTERED = re.compile(r"^(?P<attr>[^\[]+)\[(?P<filter>.+)\](?:\.(?P<sub>[A-Za-z0-9_$\-]+))?$")
MAX_OPERATIONS = 100


class PatchError(ValueError):
    """The operation is not valid here; `scim_type` is the SCIM error keyword."""

    def __init__(self, message: str, scim_type: str = "invalidValue") -> None:
        super().__init__(message)
        self.scim_type = scim_type


def _key(doc: Mapping[str, Any], name: str) -> str:
    for k in doc:
        if k.lower() == name.lower():
            return k
    return name


def _set(doc: dict[str, Any], name: str, value: Any, op: str) -> None:
    key = _key(doc, name)
    if op == "add" and isinstance(doc.get(key), list):
        items = value if isinstance(value, list) else [value]
        doc[key] = doc[key] + [v for v in items if v not in doc[key]]
    elif op == "add" and isinstance(doc.get(key), dict) and isinstance(value, dict):
        doc[key] = {**doc[key], **value}
    else:
        doc[key] = value


def apply_patch(doc: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """A new document with `operations` applied in order (the input is not changed)."""
    if not isinstance(operations, list) or not operations:
        raise PatchError("Operations must be a non-empty list", "invalidSyntax")
    if len(operations) > MAX_OPERATIONS:
        raise PatchError("too many operations", "tooMany")
    out = _copy(doc)
    for operation in operations:
        if not isinstance(operation, Mapping):
            raise PatchError("each operation must be an object", "invalidSyntax")
        op = str(operation.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise PatchError(f"unknown op {operation.get('op')!r}", "invalidSyntax")
        path = operation.get("path")
        value = operation.get("value")
        if path is None:
            if op == "remove":
                raise PatchError("remove needs a path", "noTarget")
            if not isinstance(value, Mapping):
                raise PatchError("without a path the value must be an object", "invalidValue")
            for name, v in value.items():
                _apply_path(out, str(name), op, v)
            continue
        if not isinstance(path, str) or not path:
            raise PatchError("path must be a string", "invalidPath")
        if op != "remove" and "value" not in operation:
            raise PatchError(f"{op} needs a value", "invalidValue")
        _apply_path(out, path, op, value)
    return out


def _apply_path(doc: dict[str, Any], path: str, op: str, value: Any) -> None:
    m = _FILTERED.match(path)
    if m is not None:
        _apply_filtered(doc, raw_attr_path(m.group("attr")), m.group("filter"), m.group("sub"), op, value)
        return
    parts = raw_attr_path(path)
    if not parts:
        raise PatchError(f"invalid path {path!r}", "invalidPath")
    if path.lower().startswith("urn:") and ":" in path and "." not in path.rsplit(":", 1)[-1] and len(parts) == 1 \
            and isinstance(value, Mapping) and parts[0].lower() not in {k.lower() for k in doc}:
        for name, v in value.items():                     # a whole extension schema given as the value
            _apply_path(doc, str(name), op, v)
        return
    target = doc
    for name in parts[:-1]:
        key = _key(target, name)
        if not isinstance(target.get(key), dict):
            if op == "remove":
                return
            target[key] = {}
        target = target[key]
    last = parts[-1]
    if op == "remove":
        target.pop(_key(target, last), None)
    else:
        _set(target, last, value, op)


def _apply_filtered(doc: dict[str, Any], parts: list[str], filter_text: str, sub: str | None, op: str,
                    value: Any) -> None:
    try:
        predicate = parse_filter(filter_text)
    except FilterError as exc:
        raise PatchError(f"invalid value filter: {exc}", "invalidFilter") from None
    target = doc
    for name in parts[:-1]:
        target = target.get(_key(target, name)) or {}
    key = _key(target, parts[-1])
    items = target.get(key)
    if not isinstance(items, list):
        if op == "remove":
            return
        raise PatchError(f"{parts[-1]} is not multi-valued", "noTarget")
    matched = [i for i, item in enumerate(items) if isinstance(item, Mapping) and predicate(item)]
    if not matched and op == "replace":
        raise PatchError("no value matches the filter", "noTarget")
    if op == "remove":
        if sub is None:
            target[key] = [item for i, item in enumerate(items) if i not in matched]
        else:
            for i in matched:
                items[i].pop(_key(items[i], sub), None)
        return
    for i in matched:
        if sub is None:
            items[i] = {**items[i], **value} if isinstance(value, Mapping) else value
        else:
            items[i][_key(items[i], sub)] = value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
