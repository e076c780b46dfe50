"""Process-level behaviour: workers sharing a port with Redis limits, graceful shutdown, demo mode."""
from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REDIS_URL
from tests.e2e.harness import ROOT, CasemateServer, base_config, free_port, inherited, wait_http

KEY = "cm_live_" + "procKey0123456789abcdefghijklmnopqrstuv"


async def _fire(url: str, n: int) -> list[int]:
    async with httpx.AsyncClient(timeout=20) as c:
        async def one(i: int) -> int:
            r = await c.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                             json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"n{i}"}]})
            return r.status_code
        return await asyncio.gather(*(one(i) for i in range(n)))


def test_rate_limit_is_exact_across_two_workers_with_redis(mock_upstream, tmp_path, redis_client_sync):
    cfg = base_config(mock_upstream, [{"key": KEY, "tenant": "rl", "rpm": 25}])
    srv = CasemateServer(tmp_path, cfg, workers=2, env={"CASEMATE_REDIS_URL": REDIS_URL})
    try:
        codes = asyncio.run(_fire(srv.url, 60))
        assert codes.count(200) == 25 and codes.count(429) == 35
        # multiprocess metrics: one scrape (served by either worker) sums both workers' series
        time.sleep(1.2)                                   # buffered stage histograms flush every second
        families = {f.name: f for f in text_string_to_metric_families(httpx.get(srv.url + "/metrics").text)}
        by_status = {s.labels["status"]: s.value for s in families["casemate_requests"].samples
                     if s.name == "casemate_requests_total" and s.labels["route"] == "chat"}
        assert by_status == {"200": 25.0, "429": 35.0}
        auth = [s for s in families["casemate_stage_duration_seconds"].samples
                if s.name.endswith("_count") and s.labels["stage"] == "authenticate"]
        assert auth and auth[0].value == 60.0
    finally:
        assert srv.stop() == 0


def test_graceful_shutdown_completes_an_in_flight_stream(mock_upstream, tmp_path):
    cfg = base_config(mock_upstream, [{"key": KEY, "tenant": "gs"}])
    srv = CasemateServer(tmp_path, cfg)
    received: list[str] = []
    done = threading.Event()

    def consume() -> None:
        with httpx.stream("POST", srv.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "gpt-4o-mini", "stream": True, "messages": [
                              {"role": "user", "content": "slow stream [[mock:chunk_delay_ms=150]] [[mock:chunk_chars=4]]"}]},
                          timeout=30) as r:
            for line in r.iter_lines():
                if line:
                    received.append(line)
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert received, "stream did not start"
    srv.signal(signal.SIGTERM)
    t.join(30)
    assert done.is_set()
    assert received[-1] == "data: [DONE]"
    assert srv.stop() == 0
    # new connections are refused once draining has begun
    with pytest.raises(httpx.HTTPError):
        httpx.get(srv.url + "/health", timeout=1)


def test_demo_mode_writes_a_private_key_and_serves_a_round_trip(tmp_path):
    port, admin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if inherited(k) and k != "OPENAI_API_KEY"}
    env.update({"CASEMATE_DATA_DIR": str(tmp_path / "data"), "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""})
    proc = subprocess.Popen([sys.executable, "-m", "proxy.cli", "serve", "--demo", "--port", str(port),
                             "--admin-port", str(admin_port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", proc=proc)
        key_file = tmp_path / "data" / "demo_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        from openai import OpenAI

        c = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        r = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello, Casemate!"}])
        assert r.choices[0].message.content == "Echo: Hello, Casemate!"
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert "mock upstream" in out and "curl" in out and "OpenAI(" in out
