"""Stage 4: sliding-window limits per tenant and per key (requests and tokens per minute)."""
from __future__ import annotations

from typing import Protocol, Sequence

from pipeline.context import RequestContext
from pipeline.errors import RateLimited, SwitchedOff
from pipeline.ratelimit import RateResult, Scope


class Limiter(Protocol):
    async def check(self, scopes: Sequence[Scope]) -> RateResult: ...
    async def add_tokens(self, scope_keys: Sequence[str], tokens: int) -> None: ...


def scope_keys(ctx: RequestContext) -> tuple[str, ...]:
    p = ctx.principal
    if p is None:
        return ()
    return ("t:" + p.tenant_id, "k:" + p.subject)


class RateLimitStage:
    """Shared (Redis) limiter: one awaited Lua call."""

    name = "rate_limit"
    phase = "prefix"
    optional = False

    def __init__(self, limiter: Limiter, default_rpm: int, default_tpm: int) -> None:
        self._lim = limiter
        self._rpm = default_rpm
        self._tpm = default_tpm

    def scopes(self, ctx: RequestContext, prefix: str = "") -> tuple[Scope, Scope] | None:
        """The tenant's and the key's windows; `prefix` keeps traffic apart (tool checks, traces, MCP)."""
        p = ctx.principal
        if p is None:
            return None
        memo = p.limit_scopes
        key = (prefix, self._rpm, self._tpm)
        out = memo.get(key)
        if out is None:
            t_rpm = p.tenant_rpm or self._rpm
            t_tpm = p.tenant_tpm or self._tpm
            out = memo[key] = (Scope(prefix + "t:" + p.tenant_id, t_rpm, t_tpm),
                               Scope(prefix + "k:" + p.subject, p.rpm or t_rpm, p.tpm or t_tpm))
        return out

    async def __call__(self, ctx: RequestContext) -> None:
        scopes = self.scopes(ctx)
        if scopes is not None:
            apply_result(ctx, await self._lim.check(scopes))

    async def limit_apart(self, ctx: RequestContext, prefix: str) -> None:
        """Count the request under the same limits but in windows of its own (scope keys get `prefix`),
        for traffic that must not share the chat budget (tool checks, traces, MCP)."""
        scopes = self.scopes(ctx, prefix)
        if scopes is not None:
            apply_result(ctx, await self._lim.check(scopes))


class LocalRateLimitStage(RateLimitStage):
    """In-process limiter: called without an await."""

    def __call__(self, ctx: RequestContext) -> None:  # type: ignore[override]
        scopes = self.scopes(ctx)
        if scopes is not None:
            apply_result(ctx, self._lim.check_now(scopes))  # type: ignore[attr-defined]

    async def limit_apart(self, ctx: RequestContext, prefix: str) -> None:
        scopes = self.scopes(ctx, prefix)
        if scopes is not None:
            apply_result(ctx, self._lim.check_now(scopes))  # type: ignore[attr-defined]


def apply_result(ctx: RequestContext, res: RateResult) -> None:
    """Set X-RateLimit-* headers; raise 429 (or 503 when the backend fails closed)."""
    ctx.rl_state = res
    if res.limit:
        h = ctx.response_headers
        h["X-RateLimit-Limit"] = str(res.limit)
        h["X-RateLimit-Remaining"] = str(max(0, res.remaining))
        h["X-RateLimit-Reset"] = str(res.reset_s)
    if not res.allowed:
        if res.reason == "backend_unavailable":
            raise SwitchedOff("Rate limiter unavailable and configured to fail closed.",
                              error_code="GW-RL-503", reason="ratelimit_unavailable",
                              headers={"Retry-After": str(res.retry_after_s)})
        what = "tokens per minute" if res.reason == "tokens" else "requests per minute"
        raise RateLimited(f"Rate limit exceeded ({what}); retry after {res.retry_after_s} s.",
                          error_code="GW-429", reason=f"ratelimit_{res.reason}",
                          headers={"Retry-After": str(res.retry_after_s)})
