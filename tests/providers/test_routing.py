"""Model resolution, configuration checks, cost, the merged model list."""
from __future__ import annotations

from typing import Callable

import pytest

from pipeline.errors import StageError
from proxy.providers import ModelNotFound, ProviderConfig, ProviderRouter
from tests.providers.scripted import Reply, ScriptedUpstream

Build = Callable[..., ProviderRouter]


def cfg(name: str, kind: str = "openai", models: tuple[str, ...] = ("*",), **kw: object) -> ProviderConfig:
    return ProviderConfig(name=name, kind=kind, base_url=kw.pop("base_url", "http://127.0.0.1:9/v1"),  # type: ignore[arg-type]
                          models=models, **kw)  # type: ignore[arg-type]


def test_provider_prefix_selects_the_provider_and_strips_the_prefix(make_router: Build) -> None:
    router = make_router(cfg("openai", models=("gpt-4o",)), cfg("together", models=("*",)))
    route = router.resolve("openai/gpt-4o-mini")
    assert (route.provider.name, route.upstream_model) == ("openai", "gpt-4o-mini")


def test_a_slash_model_name_whose_prefix_is_no_provider_stays_whole(make_router: Build) -> None:
    router = make_router(cfg("together", models=("*",)))
    route = router.resolve("meta-llama/Llama-3-70b")
    assert (route.provider_name, route.upstream_model) == ("together", "meta-llama/Llama-3-70b")


def test_first_provider_listing_the_model_wins_over_wildcards(make_router: Build) -> None:
    router = make_router(cfg("any", models=("*",)), cfg("claude", "anthropic", models=("claude-x",)),
                         cfg("claude2", "anthropic", models=("claude-x",)))
    assert router.resolve("claude-x").provider.name == "claude"
    assert router.resolve("gpt-4o").provider.name == "any"


def test_default_provider_takes_models_nobody_lists(make_router: Build) -> None:
    router = make_router(cfg("a", models=("m1",)), cfg("b", models=("m2",)), default_provider="b")
    assert router.resolve("other").provider.name == "b"


def test_unknown_model_is_a_404_model_not_found_stage_error(make_router: Build) -> None:
    router = make_router(cfg("a", models=("m1",)))
    with pytest.raises(ModelNotFound) as info:
        router.resolve("nope")
    err = info.value
    assert isinstance(err, StageError)
    assert (err.status, err.error_code, err.openai_type, err.code) == (404, "GW-404", "invalid_request_error",
                                                                       "model_not_found")
    assert "nope" in err.detail


def test_unknown_fallback_or_default_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="fallback"):
        ProviderRouter([cfg("a", fallback="ghost")])
    with pytest.raises(ValueError, match="default provider"):
        ProviderRouter([cfg("a")], "ghost")
    with pytest.raises(ValueError, match="unique"):
        ProviderRouter([cfg("a"), cfg("a")])


def test_config_repr_never_shows_the_api_key() -> None:
    assert "sk-secret" not in repr(cfg("a", api_key="sk-secret"))


def test_config_is_built_from_a_settings_like_object() -> None:
    from proxy.config import ProviderSettings
    settings = ProviderSettings(name="az", kind="azure", base_url="https://x.openai.azure.com", api_key="k",
                                api_key_env="IGNORED", models=("gpt-4o",), deployments={"gpt-4o": "prod"},
                                prices={"gpt-4o": (0.005, 0.015)})
    config = ProviderConfig.from_settings(settings)
    assert (config.kind, config.deployments["gpt-4o"], config.prices["gpt-4o"]) == ("azure", "prod", (0.005, 0.015))


def test_cost_uses_per_thousand_prices_and_is_zero_for_unpriced_models(make_router: Build) -> None:
    router = make_router(cfg("a", prices={"gpt-4o": (0.0025, 0.01)}))
    assert router.cost("a", "gpt-4o", 2000, 500) == pytest.approx(0.005 + 0.005)
    assert router.cost("a", "other", 2000, 500) == 0.0
    assert router.cost("ghost", "gpt-4o", 1, 1) == 0.0


async def test_model_list_merges_configured_and_upstream_models(make_router: Build,
                                                                 upstream: ScriptedUpstream) -> None:
    upstream.script("/v1/models", Reply(json={"object": "list", "data": [
        {"id": "gpt-4o", "object": "model", "created": 5, "owned_by": "openai"},
        {"id": "claude-x", "object": "model", "created": 6, "owned_by": "openai"}]}))
    upstream.script("/anth/v1/models", Reply(json={"data": [
        {"id": "claude-x", "type": "model", "display_name": "X", "created_at": "2025-01-01T00:00:00Z"}],
        "has_more": False}))
    router = make_router(
        cfg("oa", base_url=upstream.url + "/v1", models=("*",)),
        cfg("claude", "anthropic", base_url=upstream.url + "/anth", models=("claude-x",)),
        cfg("down", base_url="http://127.0.0.1:9/v1", models=("local-model",), connect_timeout_s=0.5))
    listing = await router.list_models()
    ids = [m["id"] for m in listing["data"]]
    assert listing["object"] == "list"
    assert set(ids) == {"claude-x", "local-model", "gpt-4o", "oa/claude-x"}
    assert all(router.resolve(i) for i in ids)          # every listed id routes back
    assert router.resolve("oa/claude-x").provider.name == "oa"


async def test_ready_turns_false_after_close(make_router: Build) -> None:
    router = make_router(cfg("a"))
    assert router.ready
    await router.close()
    assert not router.ready
