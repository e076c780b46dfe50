"""Prometheus metrics. Import after the CLI has set PROMETHEUS_MULTIPROC_DIR (several workers).

Label cardinality stays bounded: routes, stages, providers, reasons and detector
categories are fixed sets; tenant ids appear only when `metrics.tenant_labels` is on.
"""
from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any, Callable

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, REGISTRY)

MULTIPROC = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
_STAGE_BUCKETS = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0)
_LAT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter("casemate_requests_total", "Requests by route and HTTP status", ["route", "status"])
STAGE = Histogram("casemate_stage_duration_seconds", "Time spent in each pipeline stage", ["stage"],
                  buckets=_STAGE_BUCKETS)
UPSTREAM = Histogram("casemate_upstream_latency_seconds", "Upstream call latency by provider and outcome",
                     ["provider", "outcome"], buckets=_LAT_BUCKETS)
UPSTREAM_RETRIES = Counter("casemate_upstream_retries_total", "Upstream retries by provider and reason",
                           ["provider", "reason"])
TOKENS = Counter("casemate_tokens_total", "Tokens by direction", ["direction"])
BLOCKS = Counter("casemate_blocks_total", "Refused requests by reason", ["reason"])
CACHE = Counter("casemate_cache_requests_total", "Response cache lookups", ["result"])
RATELIMIT = Counter("casemate_ratelimit_rejections_total", "Rate-limit rejections", ["reason"])
DETECTIONS = Counter("casemate_detections_total", "Detector findings", ["detector", "category", "action"])
INFLIGHT = Gauge("casemate_inflight_requests", "Requests in flight", multiprocess_mode="livesum")
AUDIT_QUEUE = Gauge("casemate_audit_queue_depth", "Audit events waiting to be written", multiprocess_mode="livesum")
AUDIT_JOURNAL = Gauge("casemate_audit_journal_bytes", "Bytes in the audit spill journal", multiprocess_mode="livemax")
AUDIT_SPILLED = Counter("casemate_audit_spilled_total", "Audit events spilled to the journal", ["reason"])
COST = Counter("casemate_cost_usd_total", "Upstream cost in USD")
TENANT_REQUESTS = Counter("casemate_tenant_requests_total", "Requests by tenant (only when enabled)", ["tenant"])


class BufferedHistogram:
    """Hot-path histogram buffer: `observe` is a bisect and two adds; `flush` moves the counts
    into the Prometheus child (works in multiprocess mode too). Flushed every second and
    before every scrape, so the exported series are exact, at most a second late."""

    __slots__ = ("_child", "_bounds", "_counts", "_sum")
    _all: list["BufferedHistogram"] = []

    def __init__(self, child: Any) -> None:
        self._child = child
        self._bounds = list(child._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        BufferedHistogram._all.append(self)

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def flush(self) -> None:
        counts = self._counts
        if not any(counts):
            return
        buckets = self._child._buckets
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)
                counts[i] = 0
        self._child._sum.inc(self._sum)
        self._sum = 0.0

    @classmethod
    def flush_all(cls) -> None:
        for h in cls._all:
            h.flush()


_stage_buffers: dict[str, BufferedHistogram] = {}


def stage_observer(stage: str) -> Callable[[float], None]:
    """Bind a buffered histogram child once, at chain compile time."""
    buf = _stage_buffers.get(stage)
    if buf is None:
        buf = _stage_buffers[stage] = BufferedHistogram(STAGE.labels(stage=stage))
    return buf.observe


class UpstreamObserver:
    """Plugged into the provider router."""

    def __init__(self) -> None:
        self._lat: dict[tuple[str, str], BufferedHistogram] = {}

    def upstream_latency(self, provider: str, seconds: float, outcome: str) -> None:
        h = self._lat.get((provider, outcome))
        if h is None:
            h = self._lat[(provider, outcome)] = BufferedHistogram(UPSTREAM.labels(provider=provider, outcome=outcome))
        h.observe(seconds)

    def retry(self, provider: str, reason: str) -> None:
        UPSTREAM_RETRIES.labels(provider=provider, reason=reason).inc()


class AuditMetrics:
    def audit_depth(self, depth: int, journal_bytes: int) -> None:
        AUDIT_QUEUE.set(depth)
        AUDIT_JOURNAL.set(journal_bytes)

    def audit_spilled(self, n: int, reason: str) -> None:
        AUDIT_SPILLED.labels(reason=reason).inc(n)


def render() -> tuple[bytes, str]:
    BufferedHistogram.flush_all()
    if MULTIPROC:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
