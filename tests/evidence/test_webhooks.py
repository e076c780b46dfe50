"""Webhooks: Standard Webhooks signatures, retries with backoff then dead-letter, redelivery, SSRF refusal,
secrets never listed. Events come from real admin writes through the background dispatcher."""
from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from standardwebhooks.webhooks import Webhook

from admin_api.webhooks import retry_delay, send
from tests.admin.conftest import AdminHarness, Org
from tests.evidence.conftest import Receiver


async def _eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check() if asyncio.iscoroutinefunction(check) else check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _hook(admin: AdminHarness, org: Org, url: str, **extra: Any) -> dict[str, Any]:
    _, body = await admin.call("POST", "/api/v1/webhooks", org, json={"url": url, **extra}, expect=201)
    return body["data"]


async def test_a_revoked_key_reaches_the_webhook_signed_per_standard_webhooks(
    hooks_admin: tuple[AdminHarness, Org], receiver: Receiver
) -> None:
    admin, org = hooks_admin
    hook = await _hook(admin, org, receiver.url, event_types=["key.revoked"])
    assert hook["secret"].startswith("whsec_")
    _, key = await admin.call("POST", "/api/v1/keys", org, json={"name": "leaky"}, expect=201)
    await admin.call("POST", f"/api/v1/keys/{key['data']['id']}/revoke", org, json={"reason": "leaked"}, expect=200)
    await _eventually(lambda: receiver.requests)
    headers, body = receiver.requests[0]
    payload = Webhook(hook["secret"]).verify(body, {k.lower(): v for k, v in headers.items()})
    assert payload["type"] == "key.revoked"
    assert payload["data"]["resource_id"] == key["data"]["id"]
    assert payload["data"]["tenant_id"] == org.tenant_id
    assert len(receiver.requests) == 1                     # key.created was not subscribed
    _, deliveries = await admin.call("GET", f"/api/v1/webhooks/{hook['id']}/deliveries", org, expect=200)
    (d,) = deliveries["data"]
    assert (d["status"], d["attempts"], d["response_code"]) == ("succeeded", 1, 200)
    assert d["latency_ms"] > 0


async def test_failures_retry_with_backoff_then_dead_letter_and_redelivery_succeeds(
    hooks_admin: tuple[AdminHarness, Org], receiver: Receiver
) -> None:
    admin, org = hooks_admin
    hook = await _hook(admin, org, receiver.url, event_types=["policy.changed"])
    receiver.statuses = [500, 502, 503]
    await admin.call("POST", "/api/v1/policies", org, json={"name": "p", "document": {}}, expect=201)
    path = f"/api/v1/webhooks/{hook['id']}/deliveries"

    async def dead() -> Any:
        _, body = await admin.call("GET", path, org, params={"status": "dead"}, expect=200)
        return body["data"]

    (d,) = await _eventually(dead)
    assert (d["attempts"], d["response_code"], d["error"]) == (3, 503, "HTTP 503")
    assert len(receiver.requests) == 3
    assert len({h["webhook-id"] for h, _ in receiver.requests}) == 1     # one message id across retries
    _, again = await admin.call("POST", f"{path}/{d['id']}/redeliver", org, expect=202)
    assert again["data"]["status"] == "pending"

    async def succeeded() -> Any:
        _, body = await admin.call("GET", path, org, params={"status": "succeeded"}, expect=200)
        return body["data"]

    (ok,) = await _eventually(succeeded)
    assert (ok["id"], ok["attempts"], ok["response_code"]) == (d["id"], 1, 200)
    _, events = await admin.call("GET", "/api/v1/audit/events", org, params={"action": "webhook.redeliver"},
                                 expect=200)
    assert events["data"][0]["resource_id"] == d["id"]


def test_retry_delays_grow_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, base_s=1.0, cap_s=60.0, rng=rng) for n in range(1, 10)]
    for n, delay in enumerate(delays, 1):
        ceiling = min(60.0, 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays}) == len(delays)


async def test_the_test_endpoint_sends_a_signed_test_event(
    hooks_admin: tuple[AdminHarness, Org], receiver: Receiver
) -> None:
    admin, org = hooks_admin
    hook = await _hook(admin, org, receiver.url)
    _, body = await admin.call("POST", f"/api/v1/webhooks/{hook['id']}/test", org, expect=200)
    assert (body["data"]["status"], body["data"]["event_type"]) == ("succeeded", "webhook.test")
    headers, raw = receiver.requests[-1]
    assert Webhook(hook["secret"]).verify(raw, {k.lower(): v for k, v in headers.items()})["type"] == "webhook.test"


async def test_private_loopback_and_metadata_destinations_are_refused_without_the_allow_list(
    admin: AdminHarness, orgs: tuple[Org, Org], receiver: Receiver
) -> None:
    a, _ = orgs
    for url in (receiver.url, "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/x",
                "http://10.1.2.3/hook", "http://localhost/hook", "https://user:pw@example.com/"):
        status, problem = await admin.call("POST", "/api/v1/webhooks", a, json={"url": url})
        assert (status, problem["error_code"]) == (422, "ADM-422"), url
    status, _ = await admin.call("POST", "/api/v1/webhooks", a, json={"url": "ftp://example.com/x"})
    assert status == 400
    attempt = await send(receiver.url, "whsec_" + "A" * 32, "msg", {"type": "t"}, timeout_s=2.0, allow=())
    assert not attempt.ok and attempt.error is not None and attempt.error.startswith("refused:")
    assert receiver.requests == []


async def test_secrets_are_shown_once_sealed_at_rest_and_never_listed(
    hooks_admin: tuple[AdminHarness, Org], receiver: Receiver
) -> None:
    admin, org = hooks_admin
    hook = await _hook(admin, org, receiver.url, description="siem")
    _, listing = await admin.call("GET", "/api/v1/webhooks", org, expect=200)
    _, one = await admin.call("GET", f"/api/v1/webhooks/{hook['id']}", org, expect=200)
    assert "secret" not in listing["data"][0] and "secret" not in one["data"]
    assert hook["secret"] not in str(listing) + str(one)
    raw = await admin.store.db.fetchval("SELECT secret_enc FROM webhooks WHERE id = $1", hook["id"])
    assert hook["secret"].encode() not in bytes(raw)
    _, audit = await admin.call("GET", "/api/v1/audit/events", org, params={"action": "webhook.create"}, expect=200)
    assert hook["secret"] not in str(audit)
    _, rotated = await admin.call("POST", f"/api/v1/webhooks/{hook['id']}/rotate-secret", org, expect=200)
    assert rotated["data"]["secret"] != hook["secret"]
    await admin.call("POST", f"/api/v1/webhooks/{hook['id']}/test", org, expect=200)
    headers, raw_body = receiver.requests[-1]
    Webhook(rotated["data"]["secret"]).verify(raw_body, {k.lower(): v for k, v in headers.items()})
    _, patched = await admin.call("PATCH", f"/api/v1/webhooks/{hook['id']}", org,
                                  json={"status": "disabled", "event_types": ["check.pending"]}, expect=200)
    assert (patched["data"]["status"], patched["data"]["event_types"]) == ("disabled", ["check.pending"])
    await admin.call("DELETE", f"/api/v1/webhooks/{hook['id']}", org, expect=204)
    await admin.call("GET", f"/api/v1/webhooks/{hook['id']}", org, expect=404)


async def test_events_written_while_no_dispatcher_runs_are_delivered_after_a_restart(
    hooks_admin: tuple[AdminHarness, Org], receiver: Receiver
) -> None:
    from admin_api.dispatcher import DISPATCHER, EventDispatcher

    admin, org = hooks_admin
    hook = await _hook(admin, org, receiver.url, event_types=["policy.changed"])
    running = admin.client.app[DISPATCHER]
    await running.stop()                                   # the process "dies"
    for i in range(5):
        await admin.call("POST", "/api/v1/policies", org, json={"name": f"while-down-{i}", "document": {}},
                         expect=201)
    assert receiver.requests == []
    restarted = EventDispatcher(admin.store, admin.settings)   # a new process: cursor comes from the store
    while await restarted.run_once():
        pass
    while await restarted.deliver_due():
        pass
    names = sorted(Webhook(hook["secret"]).verify(b, {k.lower(): v for k, v in h.items()})["data"]["details"]
                   ["after"]["name"] for h, b in receiver.requests)
    assert names == [f"while-down-{i}" for i in range(5)]
    assert await restarted.run_once() == 0                 # nothing is delivered twice
