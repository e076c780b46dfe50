from __future__ import annotations

import pytest

from tests.e2e.harness import CasemateServer, MockUpstream, base_config

MAIN_KEY = "cm_live_" + "e2eMainKey0123456789abcdefghijklmnopqrst"
LIMITED_KEY = "cm_live_" + "e2eLimitedKey0123456789abcdefghijklmnop"
RESTRICTED_KEY = "cm_live_" + "e2eRestrictedKey0123456789abcdefghijkl"


@pytest.fixture(scope="session")
def mock_upstream():
    m = MockUpstream()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def server(mock_upstream, tmp_path_factory):
    keys = [
        {"key": MAIN_KEY, "tenant": "acme", "name": "main", "rpm": 100000, "tpm": 100000000},
        {"key": LIMITED_KEY, "tenant": "acme", "name": "limited", "rpm": 3},
        {"key": RESTRICTED_KEY, "tenant": "other", "name": "restricted", "allowed_models": ["gpt-4o-mini"]},
    ]
    cfg = base_config(mock_upstream, keys, kill_switch={"models": ["retired-model"]},
                      logging={"level": "INFO", "json": True, "access": True})
    srv = CasemateServer(tmp_path_factory.mktemp("casemate"), cfg)
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key=MAIN_KEY, max_retries=0, timeout=20)


@pytest.fixture
def redis_client_sync():
    import redis

    from tests.conftest import REDIS_URL

    r = redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        r.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"this test needs a real Redis at {REDIS_URL} ({exc}); run `make services`", pytrace=False)
    for k in r.scan_iter(match="cm:rl:*"):
        r.delete(k)
    yield r
    r.close()
