"""Per-provider circuit breaker.

closed --(``failures`` consecutive failures)--> open --(``reset_s`` elapsed)--> half_open
half_open lets exactly one trial call through: success closes the breaker, failure re-opens it.
``failures=0`` disables the breaker (it never opens).
The proxy runs one event loop per process, so no lock is needed.
"""
from __future__ import annotations

import time
from typing import Callable, Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    __slots__ = ("failures", "reset_s", "_clock", "_state", "_consecutive", "_opened_at", "_trial_out")

    def __init__(self, failures: int, reset_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 0 or reset_s <= 0:
            raise ValueError("breaker needs failures >= 0 and reset_s > 0")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._state: BreakerState = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_s:
            return "half_open"
        return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open state only the first caller gets True."""
        if self._state == "closed":
            return True
        if self._state == "open":
            if self._clock() - self._opened_at < self.reset_s:
                return False
            self._state = "half_open"
            self._trial_out = False
        if self._trial_out:
            return False
        self._trial_out = True
        return True

    def record_success(self) -> None:
        self._state = "closed"
        self._consecutive = 0
        self._trial_out = False

    def record_failure(self) -> None:
        if self._state == "half_open":
            self._open()
            return
        self._consecutive += 1
        if self.failures and self._consecutive >= self.failures:
            self._open()

    def release(self) -> None:
        """The call ended without a verdict on upstream health (cancelled, rate-limited)."""
        if self._state == "half_open":
            self._trial_out = False

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when not open)."""
        if self._state != "open":
            return 0.0
        return max(0.0, self.reset_s - (self._clock() - self._opened_at))

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._consecutive = 0
        self._trial_out = False
