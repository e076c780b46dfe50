"""Notifications: SMTP delivery to a real local aiosmtpd server, digests under a rate limit, signed unsubscribe,
Slack Block Kit messages; secrets never returned."""
from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller

from admin_api.notify import Notifier
from admin_api.settings import AdminSettings
from admin_api.store import Store
from admin_api.webhooks import DestinationRefused
from tests.admin.conftest import MASTER_KEY, AdminHarness, Org
from tests.conftest import self_signed_tls_files
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


@contextlib.contextmanager
def _smtp_server(**tls: Any) -> Iterator[tuple[_Inbox, int]]:
    """A real aiosmtpd server on 127.0.0.1 (`tls`: aiosmtpd's `ssl_context` or `tls_context` options)."""
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **tls)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    with _smtp_server() as server:
        yield server


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


# ---- SMTP goes to the address the SSRF check vetted (no second DNS answer) --------------------

SMTP_NAME = "smtp.pinned.test"           # resolvable only through the fake resolver below
METADATA = "169.254.169.254"


class _Dns:
    """`socket.getaddrinfo` answering SMTP_NAME with `answers` in turn (the last one repeats);
    every other name goes to the real resolver. Records every connection `socket.create_connection` makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> None:
        self.answers = answers
        self.lookups = 0
        self.connected: list[str] = []
        real_lookup, real_connect = socket.getaddrinfo, socket.create_connection

        def getaddrinfo(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
            if host != SMTP_NAME:
                return real_lookup(host, port, *args, **kw)
            address = self.answers[min(self.lookups, len(self.answers) - 1)]
            self.lookups += 1
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]

        def create_connection(address: tuple[str, int], *args: Any, **kw: Any) -> socket.socket:
            self.connected.append(address[0])
            return real_connect(address, *args, **kw)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)


async def _email_notifier(store: Store, port: int, security: str) -> tuple[Notifier, str]:
    tenant = await store.create_tenant("Pinned Mail")
    await store.put_integration(tenant["id"], "email", secret=None, keep_secret=False, enabled=True, config={
        "host": SMTP_NAME, "port": port, "security": security, "from": "casemate@pinned.example",
        "to": ["sec@pinned.example"]})
    settings = AdminSettings(master_key=MASTER_KEY, webhook_allow_networks=("127.0.0.0/8",), webhook_timeout_s=5.0)
    return Notifier(store, settings), tenant["id"]


_EVENTS = [{"timestamp": "2026-01-01T00:00:00Z", "data": {"action": "key.revoke", "actor": "user:u1"}}]


@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
async def test_email_connects_to_the_vetted_address_and_verifies_tls_against_the_host_name(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, security: str
) -> None:
    cert, key = self_signed_tls_files(tmp_path, SMTP_NAME)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))   # the sender's default context trusts only this certificate
    options = {"none": {}, "starttls": {"tls_context": server_tls, "require_starttls": True},
               "tls": {"ssl_context": server_tls}}[security]
    dns = _Dns(monkeypatch, ["127.0.0.1"])
    with _smtp_server(**options) as (inbox, port):
        notifier, tenant_id = await _email_notifier(store, port, security)
        await notifier.deliver(tenant_id, "key.revoked", "email", _EVENTS)
    assert [m["Subject"] for m in inbox.to("sec@pinned.example")] == ["[Casemate] key.revoked"]
    assert dns.lookups == 1                      # the SSRF check; smtplib never resolved the name again
    assert dns.connected == ["127.0.0.1"]        # and the name (SNI, certificate) verified as smtp.pinned.test


async def test_email_tls_is_refused_when_the_certificate_does_not_name_the_host(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_tls_files(tmp_path, "someone-else.test")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    _Dns(monkeypatch, ["127.0.0.1"])
    with _smtp_server(ssl_context=server_tls) as (inbox, port):
        notifier, tenant_id = await _email_notifier(store, port, "tls")
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            await notifier.deliver(tenant_id, "key.revoked", "email", _EVENTS)
    assert inbox.messages == []


async def test_a_dns_answer_that_changes_after_the_check_is_never_connected(
    store: Store, monkeypatch: pytest.MonkeyPatch, smtp: tuple[_Inbox, int]
) -> None:
    inbox, port = smtp
    dns = _Dns(monkeypatch, ["127.0.0.1", METADATA])   # allowed for the check, metadata for any later lookup
    notifier, tenant_id = await _email_notifier(store, port, "none")
    await notifier.deliver(tenant_id, "key.revoked", "email", _EVENTS)
    assert len(inbox.to("sec@pinned.example")) == 1
    assert METADATA not in dns.connected and dns.connected == ["127.0.0.1"]
    dns.answers = [METADATA]                           # a check that sees the metadata address refuses outright
    with pytest.raises(DestinationRefused, match="non-public"):
        await notifier.deliver(tenant_id, "key.revoked", "email", _EVENTS)
    assert METADATA not in dns.connected
