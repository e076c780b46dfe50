"""Dry run of a sample chat request against a layered policy, without calling upstream.

Applies what the policy stage enforces (model and provider allow-lists, max_tokens and message
caps) and, when injection scanning is on and the detector model is installed, scores the
messages with the same detector the proxy uses.
"""
from __future__ import annotations

import threading
from typing import Any

_detector_lock = threading.Lock()
_detector: Any = None
_detector_error: str | None = None


def _injection_detector() -> Any:
    global _detector, _detector_error
    with _detector_lock:
        if _detector is None and _detector_error is None:
            try:
                from detectors.injection import InjectionDetector

                _detector = InjectionDetector()
            except (ImportError, OSError, ValueError) as exc:
                _detector_error = f"{exc.__class__.__name__}: {exc}"
        return _detector


def evaluate_request(layers: list[dict[str, Any]], name: str, request: dict[str, Any],
                     provider: str | None = None) -> dict[str, Any]:
    """Decision (allow / block / flag), violations and flags for `request` under `layers` (lowest first)."""
    from pipeline.policy import compile_policy

    pol = compile_policy(*layers, name=name)
    violations: list[str] = []
    flags: list[str] = []
    model = str(request.get("model", ""))
    if (pol.allowed_models is not None and model not in pol.allowed_models) or model in pol.denied_models:
        violations.append("model_not_allowed")
    if provider is not None and pol.allowed_providers is not None and provider not in pol.allowed_providers:
        violations.append("provider_not_allowed")
    asked = request.get("max_completion_tokens") or request.get("max_tokens")
    if pol.max_tokens is not None and isinstance(asked, int) and asked > pol.max_tokens:
        violations.append("max_tokens_exceeded")
    messages = request.get("messages") or []
    if pol.max_messages is not None and len(messages) > pol.max_messages:
        violations.append("too_many_messages")
    injection: dict[str, Any] = {"enabled": pol.injection_enabled}
    if pol.injection_enabled:
        detector = _injection_detector()
        if detector is None:
            injection["available"] = False
            injection["error"] = _detector_error
        else:
            pairs = [(m["role"] if m["role"] in ("system", "user", "assistant", "tool") else "system",
                      m.get("content") or "") for m in messages if isinstance(m.get("content"), str)]
            res = detector.scan_messages(pairs)
            threshold = pol.injection_thresholds.get(res.role, detector.thresholds.get(res.role, 0.5))
            hit = res.score >= threshold
            injection.update(available=True, score=round(res.score, 4), role=res.role, threshold=threshold,
                             rules=list(res.rule_ids), categories=list(res.categories), detected=hit)
            if hit:
                (violations if pol.injection_action == "block" else flags).append("prompt_injection")
    decision = "block" if violations else ("flag" if flags else "allow")
    return {
        "decision": decision,
        "violations": violations,
        "flags": flags,
        "policy": {"name": pol.name, "fingerprint": pol.fingerprint, "stages": list(pol.shape)},
        "injection": injection,
    }
