"""Outbound webhooks: Standard Webhooks signing, SSRF-checked sending, retry schedule.

Signing (https://www.standardwebhooks.com): secret `whsec_<base64 key>`; headers `webhook-id`
(the delivery's event id, stable across retries), `webhook-timestamp` (unix seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.

SSRF: a destination is resolved before every attempt and refused when any address is private,
loopback, link-local (cloud metadata included), multicast, reserved or unspecified, unless it
falls in `AdminSettings.webhook_allow_networks`. The connection then goes to exactly the checked
addresses (a pinned resolver), so DNS rebinding between check and connect does not help, and
redirects are never followed.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import random
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from admin_api.http import dumps

SECRET_PREFIX = "whsec_"
MAX_URL = 2000
_RESPONSE_PEEK = 1024
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(Exception):
    """The webhook URL may not be called (scheme, host or resolved address)."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def retry_delay(attempt: int, *, base_s: float = 5.0, cap_s: float = 3600.0, rng: random.Random | None = None) -> float:
    """Seconds before retry number `attempt` (1-based): exponential, capped, with full-range jitter in [50%, 100%]."""
    ceiling = min(cap_s, base_s * (2 ** (attempt - 1)))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _forbidden(addr: IPAddress) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast or addr.is_reserved
            or addr.is_unspecified or not addr.is_global)


def check_url(url: str) -> tuple[str, int]:
    """Static checks of a webhook URL; returns (host, port)."""
    if len(url) > MAX_URL:
        raise DestinationRefused("the URL is too long")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise DestinationRefused("the URL must use https (or http)")
    if not parts.hostname or parts.username or parts.password:
        raise DestinationRefused("the URL needs a host and no credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DestinationRefused("the URL's port is invalid") from None
    return parts.hostname, port


async def resolve_checked(host: str, port: int, allow: tuple[IPNetwork, ...]) -> list[ResolveResult]:
    """Resolve `host` and refuse it when any address is not public and not allow-listed."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=5.0)
    except (OSError, TimeoutError, UnicodeError, ValueError) as exc:   # UnicodeError: not a valid IDNA name
        raise DestinationRefused(f"cannot resolve {host!r}") from exc
    results: list[ResolveResult] = []
    for family, _, proto, _, sockaddr in infos:
        addr = ipaddress.ip_address(sockaddr[0])
        if _forbidden(addr) and not any(addr in net for net in allow):
            raise DestinationRefused(f"{host} resolves to a non-public address ({addr})")
        results.append(ResolveResult(hostname=host, host=str(addr), port=port, family=family, proto=proto,
                                     flags=socket.AI_NUMERICHOST))
    if not results:
        raise DestinationRefused(f"cannot resolve {host}")
    return results


class _PinnedResolver(AbstractResolver):
    """Answers with the addresses that passed the SSRF check, nothing else."""

    def __init__(self, results: list[ResolveResult]) -> None:
        self._results = results

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        return self._results

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST: 2xx or not, the response code, what went wrong, how long it took; `refused` when the
    destination failed the SSRF check (nothing was sent)."""

    ok: bool
    status_code: int | None
    error: str | None
    latency_ms: float
    refused: bool = False


async def send(url: str, secret: str, msg_id: str, payload: dict[str, Any], *, timeout_s: float,
               allow: tuple[IPNetwork, ...], user_agent: str = "Casemate-Webhooks/1") -> Attempt:
    """One signed POST; 2xx is success. Never raises for network or SSRF failures: they are the Attempt's error."""
    body = dumps(payload)
    ts = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": user_agent, "webhook-id": msg_id,
               "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body)}
    return await post(url, body, headers, timeout_s=timeout_s, allow=allow)


async def post(url: str, body: bytes, headers: dict[str, str], *, timeout_s: float,
               allow: tuple[IPNetwork, ...]) -> Attempt:
    """POST `body` to an SSRF-checked, pinned destination without following redirects."""
    started = time.perf_counter()
    try:
        host, port = check_url(url)
        resolved = await resolve_checked(host, port, allow)
        connector = aiohttp.TCPConnector(resolver=_PinnedResolver(resolved), use_dns_cache=False, force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)) as http, \
                http.post(url, data=body, headers=headers, allow_redirects=False) as resp:
            await resp.content.read(_RESPONSE_PEEK)
            status = resp.status
    except DestinationRefused as exc:
        return Attempt(False, None, f"refused: {exc}", (time.perf_counter() - started) * 1000, refused=True)
    except TimeoutError:
        return Attempt(False, None, f"timed out after {timeout_s:g}s", (time.perf_counter() - started) * 1000)
    except aiohttp.ClientError as exc:
        return Attempt(False, None, f"{exc.__class__.__name__}: {exc}"[:300], (time.perf_counter() - started) * 1000)
    latency = (time.perf_counter() - started) * 1000
    if 200 <= status < 300:
        return Attempt(True, status, None, latency)
    return Attempt(False, status, f"HTTP {status}", latency)
