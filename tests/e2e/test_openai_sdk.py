"""The real `openai` SDK against a running Casemate with the mock upstream."""
from __future__ import annotations

import httpx
import openai
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import LIMITED_KEY, MAIN_KEY, RESTRICTED_KEY


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_chat_completion_round_trip(client):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=user("hello casemate"))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello casemate"
    assert completion.usage.prompt_tokens > 0
    assert raw.headers["x-request-id"]
    assert raw.headers["x-casemate-pipeline-ms"]


def test_streaming_round_trip(client):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=user("stream me please"), stream=True)
    text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    assert text == "Echo: stream me please"


def test_embeddings_and_models(client):
    emb = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) > 0
    ids = {m.id for m in client.models.list()}
    assert "claude-3-5-sonnet" in ids and "azure-gpt" in ids


def test_request_id_is_taken_from_the_request(server):
    r = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {MAIN_KEY}",
                   "X-Request-ID": "trace-abc-123"}, json={"model": "gpt-4o-mini", "messages": user("hi")})
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-abc-123"


def test_invalid_key_raises_authentication_error_with_our_message(server):
    from openai import OpenAI

    bad = OpenAI(base_url=server.url + "/v1", api_key="cm_live_" + "x" * 40, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="gpt-4o-mini", messages=user("hi"))
    assert "Invalid API key" in str(exc.value)
    assert exc.value.body["code"] == "AUTH-002"


def test_model_outside_the_keys_allow_list_is_refused(server):
    from openai import OpenAI

    c = OpenAI(base_url=server.url + "/v1", api_key=RESTRICTED_KEY, max_retries=0)
    assert c.chat.completions.create(model="gpt-4o-mini", messages=user("ok")).choices
    with pytest.raises(openai.UnprocessableEntityError) as exc:
        c.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert "not allowed" in str(exc.value)


def test_switched_off_model_answers_503(client):
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="retired-model", messages=user("hi"))
    assert exc.value.status_code == 503 and "switched off" in str(exc.value)


def test_rate_limited_key_raises_rate_limit_error(server):
    from openai import OpenAI

    c = OpenAI(base_url=server.url + "/v1", api_key=LIMITED_KEY, max_retries=0)
    for _ in range(3):
        c.chat.completions.create(model="gpt-4o-mini", messages=user("one more"))
    with pytest.raises(openai.RateLimitError) as exc:
        c.chat.completions.create(model="gpt-4o-mini", messages=user("one too many"))
    assert "Rate limit exceeded" in str(exc.value)
    assert int(exc.value.response.headers["retry-after"]) >= 1
    assert exc.value.response.headers["x-ratelimit-limit"] == "3"


def test_upstream_500_becomes_502_problem(client):
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("boom [[mock:status=500]]"))
    assert exc.value.status_code == 502
    assert exc.value.body["code"] == "PROXY_UPSTREAM_FAILED"


def test_upstream_timeout_becomes_504_problem(client):
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="slow-model", messages=user("zzz [[mock:delay_ms=3000]]"))
    assert exc.value.status_code == 504
    assert exc.value.body["code"] == "PROXY_UPSTREAM_TIMEOUT"


def test_killed_stream_raises_api_error_in_the_sdk(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True,
        messages=user("a long answer [[mock:kill_after=2]] [[mock:chunk_chars=3]]"))
    with pytest.raises(openai.APIError) as exc:
        for _ in stream:
            pass
    assert "interrupted" in str(exc.value)


def test_retries_hide_transient_upstream_failures(client, mock_upstream):
    r = client.chat.completions.create(model="gpt-4o-mini", messages=user("flaky once [[mock:fail_times=1]]"))
    assert r.choices[0].message.content.startswith("Echo: flaky once")


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "GW-400"),
    (b"[]", 400, "GW-400"),
    (orjson.dumps({"model": "gpt-4o-mini"}), 400, "GW-400"),
    (orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}), 400, "GW-400"),
    (orjson.dumps({"model": "gpt-4o-mini", "messages": user("x"), "temperature": 9}), 400, "GW-400"),
])
def test_malformed_bodies_get_problem_documents_naming_the_field(server, body, status, code):
    r = httpx.post(server.url + "/v1/chat/completions", content=body,
                   headers={"Authorization": f"Bearer {MAIN_KEY}", "Content-Type": "application/json"})
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    doc = r.json()
    for field in ("type", "title", "status", "detail", "instance", "error_code", "request_id", "timestamp"):
        assert field in doc
    assert doc["error_code"] == code and doc["error"]["message"] == doc["detail"]


def test_validation_error_names_the_field(server):
    r = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {MAIN_KEY}"},
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]})
    assert r.status_code == 400 and r.json()["field"] == "messages[0].content"


def test_oversized_body_gets_413(server):
    big = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * 2_000_000 + b'"}]}'
    r = httpx.post(server.url + "/v1/chat/completions", content=big,
                   headers={"Authorization": f"Bearer {MAIN_KEY}", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error_code"] == "GW-413"


def test_gateway_route_answers_in_the_envelope_with_a_security_block(server):
    r = httpx.post(server.url + "/api/v1/gateway/chat/completions", headers={"Authorization": f"Bearer {MAIN_KEY}"},
                   json={"model": "gpt-4o-mini", "messages": user("gateway hello")})
    assert r.status_code == 200
    doc = r.json()
    assert doc["errors"] is None and doc["meta"]["request_id"] == r.headers["x-request-id"]
    sec = doc["data"]["security"]
    for field in ("injection_score", "pii_detected", "policy_violations", "pipeline_latency_ms"):
        assert field in sec
    assert doc["data"]["choices"][0]["message"]["content"] == "Echo: gateway hello"


def test_gateway_errors_are_plain_problems(server):
    r = httpx.post(server.url + "/api/v1/gateway/chat/completions", json={"model": "x", "messages": user("x")})
    assert r.status_code == 401 and "error" not in r.json() and r.json()["error_code"] == "AUTH-001"


def test_identical_requests_hit_the_cache(client):
    msgs = user("cache me, unique 7f3a")
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
    assert first.headers["x-casemate-cache"] == "miss" and second.headers["x-casemate-cache"] == "hit"
    assert first.parse().choices[0].message.content == second.parse().choices[0].message.content


def test_azure_provider_round_trip(client, mock_upstream):
    r = client.chat.completions.create(model="azure-gpt", messages=user("via azure"))
    assert r.choices[0].message.content == "Echo: via azure"
    last = [q for q in mock_upstream.requests() if "deployments" in q["path"]][-1]
    assert "/openai/deployments/gpt4-deploy/chat/completions" in last["path"]


def test_metrics_parse_and_show_the_stage_histogram(server, client):
    client.chat.completions.create(model="gpt-4o-mini", messages=user("for metrics"))
    text = httpx.get(server.url + "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    stages = {s.labels.get("stage") for s in families["casemate_stage_duration_seconds"].samples}
    assert {"authenticate", "rate_limit", "parse", "policy", "upstream"} <= stages
    assert "casemate_requests" in families and "casemate_inflight_requests" in families


def test_health_and_ready(server):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    r = httpx.get(server.url + "/ready")
    assert r.status_code == 200 and all(r.json()["checks"].values())


def test_access_log_is_json_lines_carrying_the_request_id(server):
    import json
    import time

    r = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {MAIN_KEY}",
                   "X-Request-ID": "log-trace-77"}, json={"model": "gpt-4o-mini", "messages": user("log me")})
    assert r.status_code == 200
    time.sleep(0.2)
    lines = [json.loads(x) for x in server.log().splitlines() if x.startswith("{")]
    mine = [x for x in lines if x.get("request_id") == "log-trace-77"]
    assert mine and mine[0]["logger"] == "casemate.access" and mine[0]["status"] == 200
    assert mine[0]["tenant_id"] and mine[0]["latency_ms"] > 0


@pytest.mark.parametrize("method, path, status", [("GET", "/v1/nothing-here", 404), ("GET", "/v1/chat/completions", 405)])
def test_unknown_routes_and_methods_get_problem_documents(server, method, path, status):
    r = httpx.request(method, server.url + path)
    assert r.status_code == status and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["error_code"] == f"HTTP-{status}" and r.headers["x-request-id"]
