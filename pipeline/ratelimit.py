"""Sliding-window rate limits per tenant and per key: requests and tokens per minute.

The window is 60 one-second buckets per scope, so a limit is exact in count
(N requests in any 60 s window, to one-second resolution). In-process by default;
with Redis one Lua script checks and records every scope of a request atomically,
so limits are exact across workers and hosts.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import NamedTuple, Sequence

WINDOW_S = 60
# Upper bounds of a configured limit (config file and admin API alike).
MAX_RPM = 100_000_000
MAX_TPM = 1_000_000_000_000
log = logging.getLogger("casemate.ratelimit")


class Scope(NamedTuple):
    key: str               # e.g. "t:<tenant_id>" or "k:<key_id>"
    rpm: int
    tpm: int


class RateResult(NamedTuple):
    allowed: bool
    limit: int             # rpm of the tightest scope
    remaining: int         # requests left in the tightest scope
    reset_s: int           # seconds until the tightest scope frees a slot
    retry_after_s: int     # when refused: seconds to wait
    reason: str = ""       # "requests" | "tokens" when refused
    degraded: bool = False  # True when the backend failed and we failed open


class _Window:
    """One scope's last 60 s: a deque of [second, requests, tokens] plus running totals (O(1) amortised)."""

    __slots__ = ("buckets", "req", "tok")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.req = 0
        self.tok = 0

    def expire(self, now_s: int) -> None:
        b = self.buckets
        lo = now_s - WINDOW_S
        while b and b[0][0] <= lo:
            _, r, t = b.popleft()
            self.req -= r
            self.tok -= t

    def current(self, now_s: int) -> list[int]:
        b = self.buckets
        if not b or b[-1][0] != now_s:
            b.append([now_s, 0, 0])
        return b[-1]

    def reset_in(self, now_s: int, tokens: bool = False) -> int:
        i = 2 if tokens else 1
        for bucket in self.buckets:
            if bucket[i]:
                return bucket[0] + WINDOW_S - now_s
        return WINDOW_S


class LocalRateLimiter:
    """In-process limiter (one worker): a sliding window of one-second buckets per scope."""

    def __init__(self) -> None:
        self._w: dict[str, _Window] = {}

    def _window(self, key: str, now_s: int) -> _Window:
        w = self._w.get(key)
        if w is None:
            w = self._w[key] = _Window()
        else:
            w.expire(now_s)
        return w

    async def check(self, scopes: Sequence[Scope]) -> RateResult:
        return self.check_now(scopes)

    def check_now(self, scopes: Sequence[Scope]) -> RateResult:
        """Synchronous check (in-process state needs no await)."""
        now_s = int(time.time())
        windows = []
        best: tuple[int, int, _Window] | None = None
        for sc in scopes:
            w = self._window(sc.key, now_s)
            if w.req >= sc.rpm:
                reset = w.reset_in(now_s)
                return RateResult(False, sc.rpm, 0, reset, max(1, reset), "requests")
            if w.tok >= sc.tpm:
                return RateResult(False, sc.rpm, max(0, sc.rpm - w.req), w.reset_in(now_s),
                                  max(1, w.reset_in(now_s, tokens=True)), "tokens")
            windows.append(w)
            rem = sc.rpm - w.req - 1
            if best is None or rem < best[0]:
                best = (rem, sc.rpm, w)
        for w in windows:
            w.current(now_s)[1] += 1
            w.req += 1
        if best is None:
            return RateResult(True, 0, 0, 0, 0)
        return RateResult(True, best[1], best[0], best[2].reset_in(now_s), 0)

    async def add_tokens(self, scope_keys: Sequence[str], tokens: int) -> None:
        if tokens <= 0:
            return
        now_s = int(time.time())
        for key in scope_keys:
            w = self._window(key, now_s)
            w.current(now_s)[2] += tokens
            w.tok += tokens

    async def close(self) -> None:
        return None


# KEYS: one hash per scope. ARGV: n, then per scope rpm, tpm.
# Fields "r<sec>" and "t<sec>" hold per-second request and token counts.
_CHECK_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1])
local lo = now - 60
local n = #KEYS
local best_rem, best_lim, best_reset = nil, 0, 0
for i = 1, n do
  local rpm = tonumber(ARGV[2*i-1]); local tpm = tonumber(ARGV[2*i])
  local flat = redis.call('HGETALL', KEYS[i])
  local used, tokens, oldest, toldest = 0, 0, now, now
  for j = 1, #flat, 2 do
    local f = flat[j]; local sec = tonumber(string.sub(f, 2)); local v = tonumber(flat[j+1])
    if sec <= lo then
      redis.call('HDEL', KEYS[i], f)
    elseif string.sub(f, 1, 1) == 'r' then
      used = used + v; if sec < oldest then oldest = sec end
    else
      tokens = tokens + v; if sec < toldest then toldest = sec end
    end
  end
  local reset = oldest + 60 - now
  if used >= rpm then return {0, rpm, 0, reset, math.max(1, reset), 1} end
  if tokens >= tpm then return {0, rpm, math.max(0, rpm - used), reset, math.max(1, toldest + 60 - now), 2} end
  local rem = rpm - used - 1
  if best_rem == nil or rem < best_rem then best_rem, best_lim, best_reset = rem, rpm, reset end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'r' .. now, 1)
  redis.call('EXPIRE', KEYS[i], 120)
end
return {1, best_lim, best_rem or 0, best_reset, 0, 0}
"""

_ADD_TOKENS_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1])
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 't' .. now, tonumber(ARGV[1]))
  redis.call('EXPIRE', KEYS[i], 120)
end
return 1
"""

_REASONS = {1: "requests", 2: "tokens"}


class RedisRateLimiter:
    """Exact across workers and hosts: one atomic Lua call per request."""

    def __init__(self, redis, *, fail_open: bool = True, prefix: str = "cm:rl:") -> None:  # type: ignore[no-untyped-def]
        self._r = redis
        self._fail_open = fail_open
        self._prefix = prefix
        self._check = redis.register_script(_CHECK_LUA)
        self._add = redis.register_script(_ADD_TOKENS_LUA)

    async def check(self, scopes: Sequence[Scope]) -> RateResult:
        keys = [self._prefix + s.key for s in scopes]
        args: list[int] = []
        for s in scopes:
            args += (s.rpm, s.tpm)
        try:
            ok, lim, rem, reset, retry, reason = await self._check(keys=keys, args=args)
        except Exception as exc:  # noqa: BLE001 - Redis down: fail open or closed by config
            if log.isEnabledFor(logging.WARNING):
                log.warning("rate limiter backend failed: %s", exc.__class__.__name__)
            if self._fail_open:
                return RateResult(True, 0, 0, 0, 0, degraded=True)
            return RateResult(False, 0, 0, 0, 5, "backend_unavailable", degraded=True)
        return RateResult(bool(ok), int(lim), int(rem), int(reset), int(retry), _REASONS.get(int(reason), ""))

    async def add_tokens(self, scope_keys: Sequence[str], tokens: int) -> None:
        if tokens <= 0:
            return
        try:
            await self._add(keys=[self._prefix + k for k in scope_keys], args=[tokens])
        except Exception:  # noqa: BLE001 - token accounting is best effort when Redis is down
            if log.isEnabledFor(logging.WARNING):
                log.warning("rate limiter token accounting failed")

    async def close(self) -> None:
        return None
