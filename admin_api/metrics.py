"""Prometheus metrics of the admin process: webhook deliveries and notifications.

They live in prometheus_client's default registry, the one `proxy.metrics.render()` serves on
`/metrics` (in multiprocess mode too: like proxy/metrics.py, import this after the CLI has set
PROMETHEUS_MULTIPROC_DIR; the admin app is created inside the workers, after it). Labels are
fixed sets: no tenant ids, URLs or host names.
"""
from __future__ import annotations

from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

WebhookOutcome = Literal["delivered", "failed_retrying", "dead_lettered", "refused_ssrf"]
NotificationOutcome = Literal["sent", "failed", "refused_ssrf"]

_DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

WEBHOOK_DELIVERIES = Counter(
    "casemate_webhook_deliveries_total",
    "Webhook delivery attempts, each counted once: delivered (2xx), dead_lettered (failed with no attempt left), "
    "refused_ssrf (destination refused by the SSRF rules; retried), failed_retrying (any other failure; retried)",
    ["outcome"])
WEBHOOK_SECONDS = Histogram("casemate_webhook_delivery_seconds",
                            "Duration of one webhook delivery attempt (resolution, connection, response)",
                            buckets=_DELIVERY_BUCKETS)
WEBHOOK_PENDING = Gauge("casemate_webhook_deliveries_pending",
                        "Webhook deliveries waiting to be sent, retries included (the store's count)",
                        multiprocess_mode="livemax")
NOTIFICATIONS = Counter("casemate_notifications_sent_total",
                        "Notification messages (one per channel and digest) by channel and outcome",
                        ["channel", "outcome"])


def webhook_attempt(outcome: WebhookOutcome, seconds: float) -> None:
    """Count one webhook delivery attempt and its duration."""
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
    WEBHOOK_SECONDS.observe(seconds)


def notification(channel: str, outcome: NotificationOutcome) -> None:
    """Count one notification message (`channel` is one of notify.CHANNELS)."""
    NOTIFICATIONS.labels(channel=channel, outcome=outcome).inc()
