"""Delivery metrics of the admin process, read back from the `/metrics` text (`proxy.metrics.render`) with
prometheus_client's own parser: webhook attempts by outcome, their durations, the pending gauge, and
notification messages by channel and outcome. Counters are process-wide, so each test compares before/after."""
from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from admin_api.dispatcher import EventDispatcher
from admin_api.notify import Notifier
from admin_api.settings import AdminSettings
from admin_api.store import Store
from admin_api.webhooks import new_secret
from proxy.metrics import render
from tests.admin.conftest import MASTER_KEY
from tests.evidence.conftest import Receiver

SETTINGS = AdminSettings(master_key=MASTER_KEY, webhook_allow_networks=("127.0.0.0/8",), webhook_timeout_s=5.0,
                         webhook_retry_base_s=0.02, webhook_max_attempts=3)
PRIVATE = "http://10.1.2.3/hook"          # not allow-listed: refused by the SSRF check at every attempt
WEBHOOK_OUTCOMES = ("delivered", "failed_retrying", "dead_lettered", "refused_ssrf")


def _scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text: (name, sorted labels) -> value."""
    text = render()[0].decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def _attempts(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {o: _value(scrape, "casemate_webhook_deliveries_total", outcome=o) for o in WEBHOOK_OUTCOMES}


async def _deliver_pass(dispatcher: EventDispatcher) -> float:
    """Wait until a retry is due (base delay 0.02 s, jittered), run one delivery pass, return the pending gauge."""
    await asyncio.sleep(0.1)
    await dispatcher.deliver_due()
    return _value(_scrape(), "casemate_webhook_deliveries_pending")


async def test_webhook_attempts_are_counted_by_outcome_timed_and_the_pending_gauge_drains(
    store: Store, receiver: Receiver
) -> None:
    tenant = (await store.create_tenant("Metrics Inc"))["id"]
    good = await store.create_webhook(tenant, url=receiver.url, secret=new_secret())
    private = await store.create_webhook(tenant, url=PRIVATE, secret=new_secret())
    receiver.statuses = [500]                                  # the first attempt fails, the retry succeeds
    before = _scrape()
    payload = {"type": "policy.changed", "timestamp": "2026-01-01T00:00:00Z", "data": {}}
    await store.enqueue_deliveries([(tenant, hook["id"], "evt-1", "policy.changed", payload)
                                    for hook in (good, private)])
    dispatcher = EventDispatcher(store, SETTINGS)

    gauges = [await _deliver_pass(dispatcher) for _ in range(3)]
    assert gauges == [2, 1, 0]        # both retry; the good one is delivered; the private one is dead-lettered
    after = _scrape()
    delta = {o: after_n - _attempts(before)[o] for o, after_n in _attempts(after).items()}
    assert delta == {"delivered": 1, "failed_retrying": 1, "refused_ssrf": 2, "dead_lettered": 1}
    timed = (_value(after, "casemate_webhook_delivery_seconds_count")
             - _value(before, "casemate_webhook_delivery_seconds_count"))
    assert timed == 5 and _value(after, "casemate_webhook_delivery_seconds_sum") > 0
    assert len(receiver.requests) == 2
    assert not any(tenant in key[0] or any(tenant in v for _, v in key[1]) for key in after)   # no tenant labels


async def test_notifications_are_counted_by_channel_and_outcome(store: Store, receiver: Receiver) -> None:
    tenant = (await store.create_tenant("Notify Metrics"))["id"]
    notifier = Notifier(store, SETTINGS)
    events: list[dict[str, Any]] = [{"timestamp": "2026-01-01T00:00:00Z", "data": {"action": "key.revoke"}}]

    async def slack_to(url: str) -> None:
        await store.put_integration(tenant, "slack", config={"webhook_host": "x"}, secret=url, keep_secret=False,
                                    enabled=True)
        try:
            await notifier.deliver(tenant, "key.revoked", "slack", events)
        except Exception:  # noqa: BLE001 - failures are what is being counted
            pass

    before = _scrape()
    await slack_to(receiver.url)                              # sent
    receiver.statuses = [503]
    await slack_to(receiver.url)                              # failed: Slack answered 503
    await slack_to(PRIVATE)                                   # refused by the SSRF check, nothing sent
    await store.put_integration(tenant, "email", secret=None, keep_secret=False, enabled=True, config={
        "host": "10.1.2.3", "port": 25, "security": "none", "from": "a@a.example", "to": ["b@a.example"]})
    try:
        await notifier.deliver(tenant, "key.revoked", "email", events)
    except Exception:  # noqa: BLE001
        pass
    after = _scrape()
    counted = {(channel, outcome): _value(after, "casemate_notifications_sent_total", channel=channel, outcome=outcome)
               - _value(before, "casemate_notifications_sent_total", channel=channel, outcome=outcome)
               for channel in ("slack", "email") for outcome in ("sent", "failed", "refused_ssrf")}
    assert {k: v for k, v in counted.items() if v} == {("slack", "sent"): 1, ("slack", "failed"): 1,
                                                        ("slack", "refused_ssrf"): 1, ("email", "refused_ssrf"): 1}
    assert len(receiver.requests) == 2
