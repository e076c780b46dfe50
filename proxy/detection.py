"""Builds the detectors once per process (before workers fork, so they share the compiled
databases copy-on-write) and the chain stages that use them (7, 8, 9 and 12)."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger("casemate.detectors")


@dataclass(slots=True)
class Detectors:
    injection: Any
    pii: Any
    secrets: Any
    output: Any


def build_detectors() -> Detectors:
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    from detectors.injection import InjectionDetector
    from detectors.output import OutputScanner
    from detectors.pii import PiiDetector
    from detectors.secrets import SecretsDetector

    t0 = time.perf_counter()
    pii = PiiDetector()
    secrets = SecretsDetector()
    bundle = Detectors(injection=InjectionDetector(), pii=pii, secrets=secrets,
                       output=OutputScanner(pii_detector=pii, secrets_detector=secrets))
    log.info("detectors compiled in %.2fs", time.perf_counter() - t0)
    return bundle


def detection_counter() -> Callable[[str, str, str], None]:
    """casemate_detections_total{detector,category,action}, children cached (bounded label sets)."""
    from proxy.metrics import DETECTIONS

    children: dict[tuple[str, str, str], Any] = {}

    def count(detector: str, category: str, action: str) -> None:
        key = (detector, category, action)
        c = children.get(key)
        if c is None:
            c = children[key] = DETECTIONS.labels(detector=detector, category=category, action=action)
        c.inc()

    return count


def detector_stages(det: Detectors, pii_hmac_key: bytes, remote: Any = None) -> list[Any]:
    from detectors.operators import TokenVault, apply
    from pipeline.stages.injection_scan import make_injection_stage
    from pipeline.stages.output_scan import OutputScanStage
    from pipeline.stages.pii_redact import PiiRedactStage
    from pipeline.stages.secrets_scan import SecretsScanStage

    count = detection_counter()
    return [
        make_injection_stage(det.injection, count, remote),
        PiiRedactStage(det.pii, apply, TokenVault, pii_hmac_key, count),
        SecretsScanStage(det.secrets, count),
        OutputScanStage(det.output, count),
    ]
