"""Shared fixtures: real Redis and PostgreSQL (fail loudly when absent), free ports, settings."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

REDIS_URL = os.environ.get("CASEMATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("CASEMATE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def create_pg_schema(prefix: str = "t") -> str:
    """A fresh, empty schema on the test PostgreSQL (fails the test, clearly, when the server is absent)."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is unreachable ({exc}); these tests need a real server: run "
                    "`make services` or set CASEMATE_TEST_PG_URL", pytrace=False)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_schema(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
async def redis_client():
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"this test needs a real Redis at {REDIS_URL} ({exc}); run `make services` "
                    "or set CASEMATE_TEST_REDIS_URL", pytrace=False)
    prefix = f"cmtest:{uuid.uuid4().hex[:8]}:"
    yield client, prefix
    async for k in client.scan_iter(match=prefix + "*"):
        await client.delete(k)
    await client.aclose()


@pytest.fixture(scope="session")
def mcp_upstream() -> Iterator[str]:
    """A real MCP server (bench/mcp_upstream.py, the `mcp` SDK) on 127.0.0.1; its /mcp URL."""
    port = free_port()
    log = tempfile.TemporaryFile()       # a file, not a pipe: a full pipe would stall the server's access log
    proc = subprocess.Popen([sys.executable, "-m", "bench.mcp_upstream", "--port", str(port)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(log.read().decode(errors="replace")) from None
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("MCP upstream did not start")
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


async def serve_post(path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> tuple[web.AppRunner, str]:
    """A throwaway local HTTP server answering POST `path` with `handler`; returns its runner and URL."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}{path}"


def self_signed_tls_files(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` (its own trust anchor) and its key, as PEM files."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
