"""Stage 7: prompt-injection / jailbreak detection on every message, with role-aware thresholds."""
from __future__ import annotations

import logging
from typing import Any, Callable

from pipeline.context import RequestContext
from pipeline.errors import PolicyViolation
from pipeline.stages.messages import request_slots

log = logging.getLogger("casemate.detect")
Count = Callable[[str, str, str], None]     # detector, category, action


class InjectionScanStage:
    name = "injection_scan"
    phase = "tail"
    optional = True
    slot = "pre_cache"

    def __init__(self, detector: Any, count: Count, remote: Any = None) -> None:
        self._det = detector
        self._count = count
        self._remote = remote

    def _scan(self, ctx: RequestContext) -> tuple[float, str, set[str], list[str], list[tuple[str, str, float]]]:
        pol = ctx.policy
        th = pol.injection_thresholds if pol is not None else self._det.thresholds
        best_margin = -2.0
        best_score = 0.0
        best_role = "user"
        cats: set[str] = set()
        rules: list[str] = []
        uncertain: list[tuple[str, str, float]] = []
        scan = self._det.scan
        for slot in request_slots(ctx.body, ctx.route):
            res = scan(slot.text, slot.role)
            margin = res.score - th[slot.role]
            if res.rule_ids:
                rules.extend(res.rule_ids)
            if margin >= 0:
                cats.update(res.categories or ("injection",))
            if margin > best_margin:
                best_margin, best_score, best_role = margin, res.score, slot.role
            if self._remote is not None and margin < 0 and self._det.uncertain(res.score):
                uncertain.append((slot.text, slot.role, res.score))
        return best_score, best_role, cats, rules, uncertain

    def _decide(self, ctx: RequestContext, score: float, role: str, cats: set[str], rules: list[str]) -> None:
        sec = ctx.security
        sec.injection_score = max(sec.injection_score, score)
        sec.injection_rules = tuple(dict.fromkeys(rules))
        if not cats:
            return
        categories = tuple(sorted(cats))
        sec.injection_categories = categories
        action = ctx.policy.injection_action if ctx.policy is not None else "block"
        for c in categories:
            self._count("injection", c, action)
        if action == "block":
            sec.violations.append("prompt_injection")
            raise PolicyViolation(
                f"Prompt injection detected in a {role} message (categories: {', '.join(categories)}; "
                f"score {score:.2f}).", error_code="GW-003", reason="prompt_injection",
                extra={"categories": list(categories), "score": round(score, 4)})
        sec.flags.append("prompt_injection" if action == "flag" else "shadow:prompt_injection")
        if action == "shadow" and log.isEnabledFor(logging.INFO):
            log.info("shadow: would block prompt injection (%s)", ",".join(categories),
                     extra={"request_id": ctx.request_id})

    def __call__(self, ctx: RequestContext) -> None:
        score, role, cats, rules, _ = self._scan(ctx)
        self._decide(ctx, score, role, cats, rules)


def make_injection_stage(detector: Any, count: Count, remote: Any = None) -> InjectionScanStage:
    """The synchronous stage, or its async variant when a remote classifier tier is configured."""
    if remote is None:
        return InjectionScanStage(detector, count)
    return RemoteInjectionScanStage(detector, count, remote)


class RemoteInjectionScanStage(InjectionScanStage):
    """With a remote classifier: texts whose local score is uncertain get a second opinion."""

    async def __call__(self, ctx: RequestContext) -> None:  # type: ignore[override]
        score, role, cats, rules, uncertain = self._scan(ctx)
        pol = ctx.policy
        th = pol.injection_thresholds if pol is not None else self._det.thresholds
        for text, r, _local in uncertain:
            remote = await self._remote.classify(text)
            if remote is None:          # timeout or failure: keep the local score (documented fallback)
                continue
            if remote >= th[r]:
                cats.add("remote_classifier")
                if remote > score:
                    score, role = remote, r
        self._decide(ctx, score, role, cats, rules)
