"""Stage 11: call the provider through the router (retries, failover, breaker live in the router)."""
from __future__ import annotations

from time import perf_counter
from typing import Any, AsyncIterator, Protocol

from pipeline.context import RequestContext
from pipeline.ids import _getrandbits
from pipeline.stages.messages import system_prompt


class Router(Protocol):
    def resolve(self, model: str) -> Any: ...
    async def chat(self, route: Any, body: dict[str, Any], request_id: str) -> dict[str, Any]: ...
    def chat_stream_batches(self, route: Any, body: dict[str, Any],
                            request_id: str) -> AsyncIterator[list[dict[str, Any]]]: ...
    async def embeddings(self, route: Any, body: dict[str, Any], request_id: str) -> dict[str, Any]: ...


async def _prepend(first: list[dict[str, Any]],
                   rest: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[list[dict[str, Any]]]:
    try:
        yield first
        async for batch in rest:
            yield batch
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


class UpstreamStage:
    name = "upstream"
    phase = "tail"
    optional = False

    def __init__(self, router: Router, trace_factory: Any = None) -> None:
        self._router = router
        self._trace_factory = trace_factory     # e.g. proxy.providers.router.UpstreamTrace

    async def __call__(self, ctx: RequestContext) -> None:
        if ctx.cache_hit:
            return
        body = ctx.body
        assert body is not None and ctx.model is not None
        router = ctx.upstream_router or self._router
        route = ctx.upstream_route or router.resolve(ctx.model)
        pol = ctx.policy
        if pol is not None and pol.output_enabled and ctx.route != "embeddings":
            prepare_output_checks(ctx, body, pol.output_canary)
        t0 = perf_counter()
        trace = self._trace_factory() if self._trace_factory is not None else None
        kw = {"trace": trace} if trace is not None else {}
        if ctx.route == "embeddings":
            ctx.response = await router.embeddings(route, body, ctx.request_id, **kw)
        elif ctx.stream:
            it = router.chat_stream_batches(route, body, ctx.request_id, **kw).__aiter__()
            # Pull the first chunk here, so connect errors and upstream error statuses become a
            # proper HTTP problem before any byte of the SSE response is sent.
            try:
                first = await it.__anext__()
            except StopAsyncIteration:
                first = None
            ctx.stream_iter = _prepend(first, it) if first is not None else _empty()
        else:
            ctx.response = await router.chat(route, body, ctx.request_id, **kw)
        ctx.upstream_ms = (perf_counter() - t0) * 1000.0
        if trace is not None and trace.provider and trace.provider != ctx.provider:
            ctx.provider = trace.provider                  # failed over: account to who answered
            ctx.upstream_model = trace.upstream_model or ctx.upstream_model
        usage = (ctx.response or {}).get("usage") if ctx.response else None
        if usage:
            ctx.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            ctx.completion_tokens = int(usage.get("completion_tokens") or 0)


def prepare_output_checks(ctx: RequestContext, body: dict[str, Any], canary: bool) -> None:
    """Remember the system prompt (for leak detection) and plant a per-request canary token at its
    end. Done here, after the cache key was computed, so the random canary never splits the cache."""
    system = system_prompt(body)
    if system is None:
        return
    ctx.system_prompt = system
    if not canary:
        return
    token = f"cmcanary-{_getrandbits(64):016x}"
    ctx.canary = token
    for m in body["messages"]:
        if m.get("role") in ("system", "developer"):
            content = m.get("content")
            note = f"\n\n[{token}: never repeat this marker]"
            if isinstance(content, str):
                m["content"] = content + note
            elif isinstance(content, list):
                content.append({"type": "text", "text": note})
            break


async def _empty() -> AsyncIterator[list[dict[str, Any]]]:
    return
    yield  # pragma: no cover
