"""The proxy (data-plane) aiohttp app: OpenAI-compatible routes, the gateway route, health, metrics."""
from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import Any

import orjson
from aiohttp import web

from detectors.operators import StreamRestorer
from pipeline.clock import now_rfc3339
from pipeline.context import RequestContext
from pipeline.errors import HttpProblem, PayloadTooLarge, StageError, UpstreamFailed, ValidationFailed
from pipeline.stages.request_id import assign_request_id
from proxy import metrics
from proxy.check_routes import register_check_routes
from proxy.problems import problem_response, sse_error_event
from proxy.runtime import Runtime

log = logging.getLogger("casemate.proxy")
access_log = logging.getLogger("casemate.access")
RUNTIME = web.AppKey("runtime", Runtime)
VERSION = "0.1.0"
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Connection": "keep-alive",
                "X-Accel-Buffering": "no"}


class _Counters:
    """Prebound Prometheus children (label lookups kept off the hot path)."""

    def __init__(self) -> None:
        self._req: dict[tuple[str, int], Any] = {}
        self._blocks: dict[str, Any] = {}

    def request(self, route: str, status: int) -> None:
        c = self._req.get((route, status))
        if c is None:
            c = self._req[(route, status)] = metrics.REQUESTS.labels(route=route, status=str(status))
        c.inc()

    def block(self, reason: str) -> None:
        c = self._blocks.get(reason)
        if c is None:
            c = self._blocks[reason] = metrics.BLOCKS.labels(reason=reason)
        c.inc()


class ProxyHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.max_body = rt.settings.max_body_bytes
        self.counters = _Counters()
        self.tokens_in = metrics.TOKENS.labels(direction="in")
        self.tokens_out = metrics.TOKENS.labels(direction="out")
        self._auth: tuple[Any, Any] | None = None
        self.access_log = rt.settings.access_log

    # -- helpers ---------------------------------------------------------------------------
    async def _read_body(self, request: web.Request) -> bytes:
        cl = request.content_length
        if cl is not None and cl > self.max_body:
            raise PayloadTooLarge(f"Request body is {cl} bytes; the limit is {self.max_body}.", reason="too_large")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(f"Request body exceeds the limit of {self.max_body} bytes.", reason="too_large") from None

    def _headers(self, ctx: RequestContext) -> dict[str, str]:
        h = ctx.response_headers
        h["X-Request-ID"] = ctx.request_id
        sec = ctx.security
        h["X-Casemate-Injection-Score"] = f"{sec.injection_score:.3f}"
        if sec.pii_detected:
            h["X-Casemate-PII"] = ",".join(sorted(set(sec.pii_detected)))
        if sec.secrets_detected:
            h["X-Casemate-Secrets"] = ",".join(sorted(set(sec.secrets_detected)))
        if sec.identifiers_detected:
            h["X-Casemate-Identifiers"] = ",".join(sorted(set(sec.identifiers_detected)))
        if sec.flags:
            h["X-Casemate-Flags"] = ",".join(sec.flags)
        if ctx.policy is not None:
            h["X-Casemate-Policy"] = ctx.policy.name
        h["X-Casemate-Pipeline-Ms"] = f"{ctx.pipeline_ms:.3f}"
        return h

    def _problem(self, ctx: RequestContext, err: StageError, openai: bool) -> web.Response:
        ctx.error = err
        ctx.status = err.status
        self.counters.block(err.reason)
        if err.status == 429:
            metrics.RATELIMIT.labels(reason=err.reason).inc()
        return problem_response(err, instance=ctx.path, request_id=ctx.request_id, openai=openai,
                                headers=self._headers(ctx))

    def _restore(self, ctx: RequestContext, response: dict[str, Any]) -> dict[str, Any]:
        vault = ctx.vault
        if vault is None:
            return response
        for choice in response.get("choices") or ():
            msg = choice.get("message") or {}
            if isinstance(msg.get("content"), str):
                msg["content"] = vault.restore(msg["content"])
        return response

    # -- routes ----------------------------------------------------------------------------
    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._run(request, "chat", openai=True)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._run(request, "embeddings", openai=True)

    async def gateway_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._run(request, "gateway_chat", openai=False)

    async def _run(self, request: web.Request, route: str, openai: bool) -> web.StreamResponse:
        rt = self.rt
        chain = rt.chain
        assert chain is not None
        ctx = RequestContext(route, request.method, request.path, request.headers, b"", request.remote)
        assign_request_id(ctx)
        metrics.INFLIGHT.inc()
        streaming = False
        try:
            try:
                ctx.raw_body = await self._read_body(request)
            except StageError as err:
                resp = self._problem(ctx, err, openai)
                ctx.outcome = "blocked"
                return resp
            await chain.run(ctx)
            if ctx.error is not None:
                return self._problem(ctx, ctx.error, openai)
            if route == "gateway_chat" and ctx.stream:
                return self._problem(ctx, ValidationFailed(
                    "stream: the gateway route answers in the envelope; stream through /v1/chat/completions",
                    extra={"field": "stream"}, reason="invalid_request"), openai)
            if ctx.stream_iter is not None:
                streaming = True
                return await self._stream(request, ctx)
            response = self._restore(ctx, ctx.response or {})
            if route == "gateway_chat":
                return self._envelope(ctx, response)
            return web.Response(body=orjson.dumps(response), content_type="application/json",
                                headers=self._headers(ctx))
        finally:
            metrics.INFLIGHT.dec()
            if not streaming:
                self._account(ctx)
                chain.finish(ctx)

    def _account(self, ctx: RequestContext) -> None:
        self.counters.request(ctx.route, ctx.status)
        if self.access_log and access_log.isEnabledFor(logging.INFO):
            p = ctx.principal
            err = ctx.error
            access_log.info("%s %s %d", ctx.method, ctx.path, ctx.status, extra={
                "request_id": ctx.request_id, "route": ctx.route, "status": ctx.status, "outcome": ctx.outcome,
                "tenant_id": p.tenant_id if p else None, "model": ctx.model, "provider": ctx.provider,
                "error_code": err.error_code if err else None, "stream": ctx.stream,
                "latency_ms": round((perf_counter() - ctx.started) * 1000.0, 3),
                "prompt_tokens": ctx.prompt_tokens, "completion_tokens": ctx.completion_tokens})
        if ctx.prompt_tokens:
            self.tokens_in.inc(ctx.prompt_tokens)
        if ctx.completion_tokens:
            self.tokens_out.inc(ctx.completion_tokens)

    def _envelope(self, ctx: RequestContext, response: dict[str, Any]) -> web.Response:
        data = dict(response)
        data["security"] = ctx.security.as_dict(ctx.pipeline_ms)
        body = {"data": data, "meta": {"request_id": ctx.request_id, "timestamp": now_rfc3339(), "version": VERSION},
                "errors": None}
        return web.Response(body=orjson.dumps(body), content_type="application/json", headers=self._headers(ctx))

    async def _stream(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse:
        headers = self._headers(ctx)
        headers.update(_SSE_HEADERS)
        resp = web.StreamResponse(status=200, headers=headers)
        chars = 0
        restorer = StreamRestorer(ctx.vault) if ctx.vault is not None else None
        try:
            await resp.prepare(request)
            assert ctx.stream_iter is not None
            try:
                dumps = orjson.dumps
                async for batch in ctx.stream_iter:
                    parts = []
                    for chunk in batch:
                        usage = chunk.get("usage")
                        if usage:
                            ctx.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                            ctx.completion_tokens = int(usage.get("completion_tokens") or 0)
                        for choice in chunk.get("choices") or ():
                            delta = choice.get("delta")
                            content = delta.get("content") if delta else None
                            if content:
                                chars += len(content)
                                if restorer is not None:
                                    delta["content"] = restorer.feed(content)
                            if restorer is not None and choice.get("finish_reason"):
                                tail = restorer.flush()       # a token held back at the very end
                                if tail:
                                    if not isinstance(delta, dict):
                                        delta = choice["delta"] = {}
                                    delta["content"] = (delta.get("content") or "") + tail
                        parts.append(b"data: " + dumps(chunk) + b"\n\n")
                    await resp.write(b"".join(parts))
                await resp.write(b"data: [DONE]\n\n")
            except StageError as err:
                ctx.error = err
                ctx.status = err.status
                ctx.outcome = "blocked" if err.status == 422 else "interrupted"
                self.counters.block(err.reason)
                await resp.write(sse_error_event(err, ctx.request_id))
            except Exception as exc:  # noqa: BLE001 - upstream broke mid-stream
                if isinstance(exc, (ConnectionResetError, asyncio.CancelledError)):
                    raise
                err = UpstreamFailed(f"The upstream stream was interrupted: {exc.__class__.__name__}.",
                                     reason="stream_interrupted")
                ctx.error = err
                ctx.outcome = "interrupted"
                self.counters.block(err.reason)
                await resp.write(sse_error_event(err, ctx.request_id))
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            ctx.outcome = "client_closed"
            raise
        finally:
            if not ctx.completion_tokens and chars:
                ctx.completion_tokens = max(1, chars // 4)
            if not ctx.prompt_tokens:
                ctx.prompt_tokens = ctx.estimated_tokens
            self._account(ctx)
            if self.rt.chain is not None:
                self.rt.chain.finish(ctx)
        return resp

    async def models(self, request: web.Request) -> web.StreamResponse:
        rt = self.rt
        ctx = RequestContext("models", request.method, request.path, request.headers, b"", request.remote)
        assign_request_id(ctx)
        try:
            for stage in self._auth_stages():
                stage(ctx)
        except StageError as err:
            return self._problem(ctx, err, True)
        p = ctx.principal
        models = await rt.router.list_models(p.tenant_id if p else None)
        pol = rt.directory.effective_policy(p.tenant_id, rt.directory.keys_by_id.get(p.subject)) if p else None
        visible = [m for m in models if _model_visible(m.get("id", ""), p, pol)]
        self.counters.request("models", 200)
        return web.Response(body=orjson.dumps({"object": "list", "data": visible}), content_type="application/json",
                            headers={"X-Request-ID": ctx.request_id})

    def _auth_stages(self) -> tuple[Any, Any]:
        """The chain's own authenticate and kill-switch stages (for routes outside the chain)."""
        if self._auth is None:
            from pipeline.stages.authenticate import AuthenticateStage
            from pipeline.stages.kill_switch import KillSwitchStage

            assert self.rt.chain is not None
            auth = self.rt.chain.stage("authenticate")
            kill = self.rt.chain.stage("kill_switch")
            assert isinstance(auth, AuthenticateStage) and isinstance(kill, KillSwitchStage)
            self._auth = (auth, kill)
        return self._auth

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, headers=_rid(request), dumps=_dumps)

    async def ready(self, request: web.Request) -> web.Response:
        checks = self.rt.readiness()
        ok = self.rt.ready and all(checks.values())
        return web.json_response({"status": "ready" if ok else "not_ready", "checks": checks},
                                 status=200 if ok else 503, headers=_rid(request), dumps=_dumps)

    async def metrics(self, request: web.Request) -> web.Response:
        audit = self.rt.audit
        if audit is not None:
            metrics.AUDIT_QUEUE.set(audit.depth)
            metrics.AUDIT_JOURNAL.set(audit.journal_bytes)
        body, ctype = metrics.render()
        return web.Response(body=body, headers={"Content-Type": ctype, **_rid(request)})


def _model_visible(model: str, principal: Any, policy: Any) -> bool:
    if policy is not None:
        if policy.allowed_models is not None and model not in policy.allowed_models:
            return False
        if model in policy.denied_models:
            return False
    if principal is not None and principal.allowed_models is not None and model not in principal.allowed_models:
        return False
    return True


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _rid(request: web.Request) -> dict[str, str]:
    rid = request.headers.get("X-Request-ID")
    if rid is None or len(rid) > 128:
        from pipeline.ids import uuid7_str

        rid = uuid7_str()
    return {"X-Request-ID": rid}


@web.middleware
async def _unexpected_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn anything unexpected into a problem document (never a bare error page)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        err = HttpProblem(exc.status, exc.reason or "Error", exc.reason or "error",
                          error_code=f"HTTP-{exc.status}", slug="http-error")
    except asyncio.CancelledError:
        raise
    except Exception:
        rid = _rid(request)["X-Request-ID"]
        log.exception("unhandled error on %s", request.path, extra={"request_id": rid})
        err = HttpProblem(500, "Internal error", "Internal error; the request id identifies it in the logs.",
                          error_code="GW-500", slug="internal-error")
        return problem_response(err, instance=request.path, request_id=rid, openai=request.path.startswith("/v1/"))
    return problem_response(err, instance=request.path, request_id=_rid(request)["X-Request-ID"],
                            openai=request.path.startswith("/v1/"))


def create_proxy_app(rt: Runtime, *, manage_runtime: bool = True) -> web.Application:
    app = web.Application(client_max_size=rt.settings.max_body_bytes, middlewares=[_unexpected_errors])
    app[RUNTIME] = rt
    h = ProxyHandlers(rt)
    app.router.add_post("/v1/chat/completions", h.chat_completions)
    app.router.add_post("/v1/embeddings", h.embeddings)
    app.router.add_get("/v1/models", h.models)
    app.router.add_post("/api/v1/gateway/chat/completions", h.gateway_chat)
    app.router.add_get("/health", h.health)
    app.router.add_get("/ready", h.ready)
    app.router.add_get("/metrics", h.metrics)
    if manage_runtime:
        async def _startup(_app: web.Application) -> None:
            await rt.start()

        async def _cleanup(_app: web.Application) -> None:
            await rt.close()

        app.on_startup.append(_startup)
        app.on_cleanup.append(_cleanup)
    register_check_routes(app, rt)
    return app
