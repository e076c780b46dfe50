"""Notifications: SMTP delivery to a real local aiosmtpd server, digests under a rate limit, signed unsubscribe,
Slack Block Kit messages; secrets never returned."""
from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller

from tests.admin.conftest import AdminHarness, Org
from tests.evidence.conftest import Receiver


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, recipient: str) -> list[email.message.EmailMessage]:
        return [m for rcpt, m in self.messages if recipient in rcpt]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def _eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := check()):
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)
    return value


async def _revoke_new_key(admin: AdminHarness, org: Org, name: str) -> None:
    _, key = await admin.call("POST", "/api/v1/keys", org, json={"name": name}, expect=201)
    await admin.call("POST", f"/api/v1/keys/{key['data']['id']}/revoke", org, json={"reason": "test"}, expect=200)


async def test_email_goes_out_through_smtp_then_a_flood_becomes_one_digest_and_unsubscribe_stops_it(
    hooks_admin: tuple[AdminHarness, Org], smtp: tuple[_Inbox, int]
) -> None:
    admin, org = hooks_admin
    inbox, port = smtp
    _, integration = await admin.call("PUT", "/api/v1/notifications/integrations/email", org, json={
        "host": "127.0.0.1", "port": port, "security": "none", "from": "casemate@hooks.example",
        "to": ["sec@hooks.example", "ciso@hooks.example"], "username": "", "password": "smtp-pass"}, expect=200)
    assert integration["data"]["has_secret"] and "smtp-pass" not in str(integration)
    await admin.call("PUT", "/api/v1/notifications/subscriptions/key.revoked", org,
                     json={"channels": ["email"], "min_interval_s": 1.5}, expect=200)

    await _revoke_new_key(admin, org, "first")
    await _eventually(lambda: len(inbox.messages) == 2)
    first = inbox.to("sec@hooks.example")[0]
    assert first["Subject"] == "[Casemate] key.revoked"
    assert "key.revoke" in first.get_content() and first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    for i in range(4):
        await _revoke_new_key(admin, org, f"flood-{i}")
    await asyncio.sleep(0.5)
    assert len(inbox.messages) == 2                              # still inside the interval: held back
    await _eventually(lambda: len(inbox.messages) == 4, timeout=10)
    digest = inbox.to("ciso@hooks.example")[-1]
    assert digest["Subject"] == "[Casemate] 4 x key.revoked (digest)"

    link = digest["List-Unsubscribe"].strip("<>")
    token = parse_qs(urlsplit(link).query)["token"][0]
    _, result = await admin.call("POST", "/api/v1/notifications/unsubscribe", params={"token": token}, expect=200)
    assert result["data"] == {"topic": "key.revoked", "recipient": "ciso@hooks.example"}
    status, _ = await admin.call("POST", "/api/v1/notifications/unsubscribe", json={"token": token[:-2] + "xx"})
    assert status == 400
    await asyncio.sleep(1.6)
    await _revoke_new_key(admin, org, "after-unsubscribe")
    await _eventually(lambda: len(inbox.to("sec@hooks.example")) == 3)
    await asyncio.sleep(0.3)
    assert len(inbox.to("ciso@hooks.example")) == 2


async def test_slack_receives_block_kit_and_the_webhook_url_is_never_returned(
    hooks_admin: tuple[AdminHarness, Org], receiver: Receiver
) -> None:
    import orjson

    admin, org = hooks_admin
    _, integration = await admin.call("PUT", "/api/v1/notifications/integrations/slack", org,
                                      json={"webhook_url": receiver.url}, expect=200)
    assert integration["data"]["config"] == {"webhook_host": "127.0.0.1"}
    _, listing = await admin.call("GET", "/api/v1/notifications/integrations", org, expect=200)
    assert receiver.url not in str(listing) + str(integration)
    await admin.call("PUT", "/api/v1/notifications/subscriptions/policy.changed", org,
                     json={"channels": ["slack"], "min_interval_s": 0}, expect=200)
    await admin.call("POST", "/api/v1/policies", org, json={"name": "strict", "document": {}}, expect=201)
    await _eventually(lambda: receiver.requests)
    message = orjson.loads(receiver.requests[0][1])
    assert message["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "policy.changed"}}
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in message["blocks"][1]["fields"]}
    assert fields["*Action*"] == "policy.create"
    _, sent = await admin.call("POST", "/api/v1/notifications/integrations/slack/test", org, expect=200)
    assert sent["data"] == {"sent": True} and len(receiver.requests) == 2


async def test_channels_pointing_at_private_addresses_are_refused(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    status, problem = await admin.call("PUT", "/api/v1/notifications/integrations/slack", a,
                                       json={"webhook_url": "http://169.254.169.254/hook"})
    assert (status, problem["error_code"]) == (422, "ADM-422")
    status, problem = await admin.call("PUT", "/api/v1/notifications/integrations/email", a, json={
        "host": "127.0.0.1", "port": 25, "from": "a@a.example", "to": ["b@a.example"]})
    assert (status, problem["error_code"]) == (422, "ADM-422")
    status, _ = await admin.call("PUT", "/api/v1/notifications/subscriptions/not.a.topic", a,
                                 json={"channels": ["email"]})
    assert status == 404
