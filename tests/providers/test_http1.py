"""The provider hop's HTTP/1.1 client against raw TCP servers on 127.0.0.1 that say exactly
what each test needs (keep-alive, chunks, compression, stalls, early closes)."""
from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from typing import AsyncIterator

import pytest

from proxy.providers import http1

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEADERS = http1.header_block({"Content-Type": "application/json", "Authorization": "Bearer k"})


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one request; empty head at end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b"", b""
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def answer(body: bytes, *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body), extra, body)


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.server is not None
        server.server.close()


@pytest.fixture
async def client() -> AsyncIterator[http1.HTTP1Client]:
    c = http1.HTTP1Client(connect_timeout_s=2.0)
    yield c
    await c.close()


async def fetch(client: http1.HTTP1Client, url: str, **kw: object) -> tuple[int, bytes]:
    resp = await client.request("POST", url, headers=HEADERS, body=b'{"q":1}', **kw)  # type: ignore[arg-type]
    try:
        return resp.status, await resp.read()
    finally:
        resp.close()


def echo_forever(body: bytes = b'{"ok":true}') -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            if not head:
                return
            writer.write(answer(body))
            await writer.drain()
    return handler


async def test_sequential_requests_reuse_one_kept_alive_connection(serve, client) -> None:
    server = await serve(echo_forever())
    for _ in range(5):
        assert await fetch(client, server.url) == (200, b'{"ok":true}')
    assert server.connections == 1


async def test_request_carries_method_target_host_headers_and_body(serve, client) -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(answer(b"{}"))
        await writer.drain()

    server = await serve(handler)
    resp = await client.request("POST", server.url, headers=HEADERS, body=b'{"q":1}',
                                params={"api-version": "2024-10-21"}, extra_headers={"X-Request-ID": "r-1"})
    await resp.read()
    resp.close()
    head, body = seen[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat?api-version=2024-10-21 HTTP/1.1"
    port = server.url.split(":")[2].split("/")[0]
    assert f"Host: 127.0.0.1:{port}" in lines
    assert "Authorization: Bearer k" in lines and "X-Request-ID: r-1" in lines
    assert body == b'{"q":1}'


async def test_idle_connection_the_server_closed_is_replaced_without_failing_the_request(serve, client) -> None:
    async def one_answer_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b'{"n":1}'))
        await writer.drain()
        # keep-alive was not refused, but the server drops the connection once idle

    server = await serve(one_answer_then_hang_up)
    assert await fetch(client, server.url) == (200, b'{"n":1}')
    await asyncio.sleep(0.05)       # the close reaches the client while the connection is idle
    assert await fetch(client, server.url) == (200, b'{"n":1}')
    assert server.connections == 2


async def test_connection_closed_after_the_request_was_sent_is_resent_once_on_a_fresh_one(serve, client) -> None:
    calls = 0

    async def first_answers_second_hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        while True:
            head, _ = await read_request(reader)
            if not head:
                return
            calls += 1
            if calls == 2:
                return                  # read the request, close without a byte: a stale keep-alive race
            writer.write(answer(b'{"ok":true}'))
            await writer.drain()

    server = await serve(first_answers_second_hangs_up)
    assert await fetch(client, server.url) == (200, b'{"ok":true}')
    assert await fetch(client, server.url) == (200, b'{"ok":true}')
    assert calls == 3 and server.connections == 2


async def test_fresh_connection_closed_before_any_answer_is_server_disconnected(serve, client) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    server = await serve(hang_up)
    with pytest.raises(http1.ServerDisconnected):
        await fetch(client, server.url)
    assert server.connections == 1      # a new connection is never silently retried


async def test_chunked_and_gzip_bodies_are_decoded(serve, client) -> None:
    payload = b'{"text":"' + b"abc" * 5000 + b'"}'
    packed = gzip.compress(payload)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n")
        for i in range(0, len(packed), 100):
            piece = packed[i:i + 100]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await read_request(reader)

    server = await serve(handler)
    assert await fetch(client, server.url) == (200, payload)


async def test_body_delimited_by_the_server_closing_is_read_to_its_end(serve, client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"1}")
        await writer.drain()

    server = await serve(handler)
    assert await fetch(client, server.url) == (200, b'{"a":1}')


async def test_answer_cut_off_mid_body_is_a_payload_error(serve, client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":")
        await writer.drain()

    server = await serve(handler)
    with pytest.raises(http1.PayloadError, match="cut off"):
        await fetch(client, server.url)


async def test_answer_larger_than_the_cap_is_refused_also_when_compressed(serve) -> None:
    bomb = gzip.compress(b"0" * 2_000_000)      # ~2 KB on the wire, 2 MB decoded

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(bomb), bomb))
        await writer.drain()

    server = await serve(handler)
    small = http1.HTTP1Client(connect_timeout_s=2.0, max_body=100_000)
    try:
        with pytest.raises(http1.PayloadError, match="larger than 100000"):
            await fetch(small, server.url)
    finally:
        await small.close()


async def test_silent_server_is_a_read_timeout_and_a_slow_answer_a_total_timeout(serve, client) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(1.0)

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
        for _ in range(50):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.02)

    silent, slow = await serve(stall), await serve(trickle)
    with pytest.raises(http1.ReadTimeout):
        await fetch(client, silent.url, read_timeout_s=0.1)
    # every read comes well within the read timeout, but the whole answer takes ~1 s
    with pytest.raises(http1.TotalTimeout):
        await fetch(client, slow.url, read_timeout_s=0.5, total_timeout_s=0.3)


async def test_stream_yields_each_piece_as_it_arrives(serve, client) -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"6\r\ndata:1\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\ndata:2\r\n0\r\n\r\n")
        await writer.drain()

    server = await serve(handler)
    resp = await client.request("POST", server.url, headers=HEADERS, body=b"{}", read_timeout_s=2.0)
    pieces = resp.chunks()
    assert await pieces.__anext__() == b"data:1"     # before the server sent the rest
    release.set()
    assert [p async for p in pieces] == [b"data:2"]
    resp.close()


async def test_abandoned_answer_drops_its_connection_instead_of_reusing_it(serve, client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            if not head:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"true}")
            await writer.drain()

    server = await serve(handler)
    resp = await client.request("POST", server.url, headers=HEADERS, body=b"{}")
    resp.close()                               # body never read
    assert await fetch(client, server.url) == (200, b'{"ok":true}')
    assert server.connections == 2


async def test_connection_close_answer_is_not_reused(serve, client) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}", extra=b"Connection: close\r\n"))
        await writer.drain()

    server = await serve(handler)
    await fetch(client, server.url)
    await fetch(client, server.url)
    assert server.connections == 2


async def test_full_pool_makes_callers_wait_then_time_out(serve) -> None:
    gate = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            if not head:
                return
            await gate.wait()
            writer.write(answer(b"{}"))
            await writer.drain()

    server = await serve(slow)
    one = http1.HTTP1Client(connect_timeout_s=0.2, limit_per_origin=1)
    try:
        first = asyncio.ensure_future(fetch(one, server.url))
        await asyncio.sleep(0.05)
        with pytest.raises(http1.ConnectTimeout, match="no free connection"):
            await fetch(one, server.url)
        queued = asyncio.ensure_future(fetch(one, server.url))
        await asyncio.sleep(0.05)
        gate.set()
        assert await first == (200, b"{}") and await queued == (200, b"{}")
        assert server.connections == 1
    finally:
        await one.close()


async def test_unreachable_port_is_connect_failed(client) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(http1.ConnectFailed, match=f"127.0.0.1:{port}"):
        await fetch(client, f"http://127.0.0.1:{port}/v1")


async def test_header_values_with_line_breaks_are_refused(client) -> None:
    with pytest.raises(ValueError, match="control character"):
        http1.header_block({"Authorization": "Bearer k\r\nX-Evil: 1"})
    with pytest.raises(ValueError, match="control character"):
        await client.request("POST", "http://127.0.0.1:9/v1", headers=HEADERS, body=b"{}",
                             extra_headers={"X-Request-ID": "a\nb"})


async def test_urls_with_credentials_or_other_schemes_are_refused(client) -> None:
    with pytest.raises(ValueError, match="credentials"):
        await client.request("GET", "http://user:pw@127.0.0.1:9/v1", headers=HEADERS)
    with pytest.raises(ValueError, match="unsupported URL"):
        await client.request("GET", "ftp://127.0.0.1/v1", headers=HEADERS)


async def test_https_origin_is_verified_against_the_trusted_certificate(tmp_path) -> None:
    import ssl

    from tests.conftest import self_signed_tls_files

    cert, key = self_signed_tls_files(tmp_path, "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    tls_server = await asyncio.start_server(echo_forever(b'{"tls":true}'), "127.0.0.1", 0, ssl=server_ctx)
    port = tls_server.sockets[0].getsockname()[1]
    trusting = http1.HTTP1Client(connect_timeout_s=2.0, ssl_context=ssl.create_default_context(cafile=str(cert)))
    untrusting = http1.HTTP1Client(connect_timeout_s=2.0)       # the system's trust store
    try:
        # "localhost" resolves to 127.0.0.1 here; the certificate names localhost
        assert await fetch(trusting, f"https://localhost:{port}/v1") == (200, b'{"tls":true}')
        assert await fetch(trusting, f"https://localhost:{port}/v1") == (200, b'{"tls":true}')
        with pytest.raises(http1.ConnectFailed, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await fetch(untrusting, f"https://localhost:{port}/v1")
    finally:
        await trusting.close()
        await untrusting.close()
        tls_server.close()
