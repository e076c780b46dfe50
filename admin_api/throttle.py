"""Login throttling: failed attempts per account and per client address, in a sliding window."""
from __future__ import annotations

import time
from collections import deque


class LoginThrottle:
    """Refuses further attempts for a key after its limit of failures within `window_s` seconds.

    Keys look like `kind:value` (`email:ann@example.com`, `ip:10.0.0.7`); each kind may have its
    own limit (an address shared by many people gets a larger one than a single account).
    Held in memory per process; keys are bounded (oldest evicted) so a flood of distinct
    emails cannot grow it without limit.
    """

    def __init__(self, limit: int = 5, window_s: float = 900.0, max_keys: int = 100_000,
                 limits: dict[str, int] | None = None) -> None:
        self.limit = limit
        self.limits = dict(limits or {})
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _limit(self, key: str) -> int:
        return self.limits.get(key.split(":", 1)[0], self.limit)

    def retry_after(self, *keys: str, now: float | None = None) -> float:
        """Seconds until any of `keys` may try again (0 when allowed)."""
        t = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            q = self._failures.get(key)
            if q is None:
                continue
            while q and q[0] <= t - self.window_s:
                q.popleft()
            if len(q) >= self._limit(key):
                wait = max(wait, q[0] + self.window_s - t)
        return wait

    def failed(self, *keys: str, now: float | None = None) -> None:
        t = time.monotonic() if now is None else now
        for key in keys:
            q = self._failures.get(key)
            if q is None:
                if len(self._failures) >= self.max_keys:
                    self._failures.pop(next(iter(self._failures)))
                q = self._failures[key] = deque(maxlen=self._limit(key))
            q.append(t)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
