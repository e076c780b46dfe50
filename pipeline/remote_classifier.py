"""Optional tier 3 of injection detection: ask a remote model server.

Consulted only when the local score is uncertain (``InjectionDetector.uncertain``).
Any HTTP model server works if it accepts ``POST {"text": ...}`` and answers either
``{"score": float}`` or a Hugging Face text-classification list
``[{"label": ..., "score": ...}, ...]`` (optionally nested one level, as
``[[{...}, ...]]``). For the list form the injection probability is the score of
the label that names an attack (``INJECTION``, ``JAILBREAK``, ``MALICIOUS``,
``UNSAFE``, ``LABEL_1``, ...), or one minus the score of a benign label
(``SAFE``, ``BENIGN``, ``LEGIT``, ``LABEL_0``).

Fallback: ``classify`` returns ``None`` on any failure — timeout, connection
error, non-2xx status, malformed body, a score outside [0, 1]. The caller then
keeps the local score; the remote tier can only refine a decision, never block
traffic by being down.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import aiohttp

__all__ = ["RemoteClassifier"]

log = logging.getLogger(__name__)

_ATTACK_LABELS = frozenset({"injection", "prompt_injection", "jailbreak", "malicious", "unsafe", "attack",
                            "label_1", "1", "positive", "true"})
_BENIGN_LABELS = frozenset({"safe", "benign", "legit", "legitimate", "label_0", "0", "negative", "false"})


class RemoteClassifier:
    """Pooled client for a remote injection classifier with a strict per-call timeout."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 0.25,
        band: tuple[float, float] = (0.3, 0.8),
        *,
        headers: dict[str, str] | None = None,
        max_connections: int = 32,
        max_text_chars: int = 16384,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if not 0.0 <= band[0] <= band[1] <= 1.0:
            raise ValueError("band must satisfy 0 <= lo <= hi <= 1")
        self.url = url
        self.timeout_s = timeout_s
        self.band = band
        self._headers = dict(headers or {})
        self._max_connections = max_connections
        self._max_text_chars = max_text_chars
        self._session: aiohttp.ClientSession | None = None

    def should_consult(self, local_score: float) -> bool:
        """True when the local score lies in the band this tier is meant to resolve."""
        return self.band[0] <= local_score < self.band[1]

    async def classify(self, text: str) -> float | None:
        """Injection probability from the remote server, or ``None`` if it could not be obtained."""
        try:
            session = self._get_session()
            async with asyncio.timeout(self.timeout_s):
                async with session.post(self.url, json={"text": text[: self._max_text_chars]}) as resp:
                    if resp.status // 100 != 2:
                        log.debug("remote classifier answered HTTP %s", resp.status)
                        return None
                    body = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError, OSError) as exc:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("remote classifier unavailable: %r", exc)
            return None
        return parse_score(body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RemoteClassifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session


def parse_score(body: Any) -> float | None:
    """Injection probability from a ``{"score"}`` object or a HF-style label list; ``None`` if unusable."""
    if isinstance(body, dict):
        return _valid(body.get("score"))
    if isinstance(body, list) and body and isinstance(body[0], list):
        body = body[0]
    if not isinstance(body, list):
        return None
    for item in body:
        if not isinstance(item, dict):
            return None
        label = str(item.get("label", "")).strip().lower()
        score = _valid(item.get("score"))
        if score is None:
            continue
        if label in _ATTACK_LABELS:
            return score
        if label in _BENIGN_LABELS:
            return 1.0 - score
    return None


def _valid(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    if math.isnan(v) or not 0.0 <= v <= 1.0:
        return None
    return v
