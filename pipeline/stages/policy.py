"""Stage 6: resolve the effective policy; model/provider allow-lists, kill switches, max_tokens cap."""
from __future__ import annotations

from typing import Any, Protocol

from pipeline.context import RequestContext
from pipeline.directory import Directory
from pipeline.errors import Forbidden, PolicyViolation
from pipeline.stages.kill_switch import check_model_provider


class RouteResolver(Protocol):
    def resolve(self, model: str, tenant_id: str | None = None) -> tuple[Any, Any]: ...
    # -> (router that serves it, route with .provider.name and .upstream_model)


class PolicyStage:
    name = "policy"
    phase = "prefix"
    optional = False

    def __init__(self, directory: Directory, router: RouteResolver) -> None:
        self._dir = directory
        self._router = router

    def __call__(self, ctx: RequestContext) -> None:
        p = ctx.principal
        d = self._dir
        key = d.keys_by_id.get(p.subject) if p is not None and p.kind == "api_key" else None
        pol = d.effective_policy(p.tenant_id if p else None, key)
        ctx.policy = pol
        if p is not None and "gateway:write" not in p.permissions:
            raise Forbidden("This credential may not call the gateway (needs gateway:write).",
                            error_code="AUTH-003", reason="missing_permission")
        model = ctx.model or ""
        sec = ctx.security
        if (pol.allowed_models is not None and model not in pol.allowed_models) or model in pol.denied_models \
                or (p is not None and p.allowed_models is not None and model not in p.allowed_models):
            sec.violations.append("model_not_allowed")
            raise PolicyViolation(f"Model '{model}' is not allowed by policy '{pol.name}'.",
                                  error_code="GW-002", reason="model_not_allowed")
        router, route = self._router.resolve(model, p.tenant_id if p is not None else None)
        ctx.upstream_router = router
        ctx.upstream_route = route
        provider = route.provider.name
        ctx.provider = provider
        ctx.upstream_model = route.upstream_model
        if (pol.allowed_providers is not None and provider not in pol.allowed_providers) \
                or (p is not None and p.allowed_providers is not None and provider not in p.allowed_providers):
            sec.violations.append("provider_not_allowed")
            raise PolicyViolation(f"Provider '{provider}' is not allowed by policy '{pol.name}'.",
                                  error_code="GW-002", reason="provider_not_allowed")
        check_model_provider(d, provider, model)
        body = ctx.body
        if body is None or ctx.route == "embeddings":
            return
        cap = pol.max_tokens
        if cap is not None:
            for f in ("max_tokens", "max_completion_tokens"):
                v = body.get(f)
                if v is not None and v > cap:
                    sec.violations.append("max_tokens_exceeded")
                    raise PolicyViolation(f"{f}={v} exceeds the policy cap of {cap}.",
                                          error_code="GW-002", reason="max_tokens_exceeded",
                                          extra={"field": f})
            if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
                body["max_tokens"] = cap
        if pol.max_messages is not None and len(body["messages"]) > pol.max_messages:
            sec.violations.append("too_many_messages")
            raise PolicyViolation(f"messages has {len(body['messages'])} items; policy allows {pol.max_messages}.",
                                  error_code="GW-002", reason="too_many_messages")
