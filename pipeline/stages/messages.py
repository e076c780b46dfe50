"""Text slots of an OpenAI chat request: where detectors read and redactors write."""
from __future__ import annotations

from typing import Any, Iterator

# OpenAI roles mapped to the four detector roles.
ROLE_MAP = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
            "tool": "tool", "function": "tool"}


class TextSlot:
    """One string inside the request body; `set()` writes a rewritten value back in place."""

    __slots__ = ("role", "container", "key")

    def __init__(self, role: str, container: Any, key: Any) -> None:
        self.role = role
        self.container = container
        self.key = key

    @property
    def text(self) -> str:
        return self.container[self.key]  # type: ignore[no-any-return]

    def set(self, value: str) -> None:
        self.container[self.key] = value


def text_slots(body: dict[str, Any] | None) -> Iterator[TextSlot]:
    """Every text a model will read: message contents (strings and text parts)."""
    if not body:
        return
    for m in body.get("messages") or ():
        role = ROLE_MAP.get(m.get("role"), "user")
        content = m.get("content")
        if isinstance(content, str):
            if content:
                yield TextSlot(role, m, "content")
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    yield TextSlot(role, part, "text")


def system_prompt(body: dict[str, Any] | None) -> str | None:
    parts = [s.text for s in text_slots(body) if s.role == "system"]
    return "\n".join(parts) if parts else None


def embedding_slots(body: dict[str, Any] | None) -> Iterator[TextSlot]:
    """The `input` strings of an embeddings request (role "user")."""
    if not body:
        return
    inp = body.get("input")
    if isinstance(inp, str):
        yield TextSlot("user", body, "input")
    elif isinstance(inp, list):
        for i, item in enumerate(inp):
            if isinstance(item, str):
                yield TextSlot("user", inp, i)


def request_slots(body: dict[str, Any] | None, route: str) -> Iterator[TextSlot]:
    return embedding_slots(body) if route == "embeddings" else text_slots(body)
