"""Audit trail endpoints: filters, cursor pagination, one event, streamed exports, retention and purges."""
from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime, timedelta

from casemate_verify.cli import verify_log
from tests.admin.conftest import AdminHarness, Org


async def _policies(admin: AdminHarness, org: Org, names: list[str]) -> None:
    for name in names:
        await admin.call("POST", "/api/v1/policies", org, json={"name": name, "document": {}}, expect=201)


async def test_filters_by_action_resource_actor_substring_and_time(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    await _policies(admin, a, ["alpha-policy", "beta-policy"])
    await admin.call("POST", "/api/v1/keys", a, json={"name": "ci-key"}, expect=201)
    _, body = await admin.call("GET", "/api/v1/audit-log", a, params={"action": "policy.create"}, expect=200)
    assert [e["action"] for e in body["data"]] == ["policy.create", "policy.create"]
    _, body = await admin.call("GET", "/api/v1/audit/events", a, params={"resource_type": "api_key"}, expect=200)
    assert {e["action"] for e in body["data"]} == {"key.create"}
    _, body = await admin.call("GET", "/api/v1/audit/events", a, params={"q": "BETA-pol"}, expect=200)
    assert [e["details"]["after"]["name"] for e in body["data"]] == ["beta-policy"]
    _, body = await admin.call("GET", "/api/v1/audit/events", a, params={"q": "100%_"}, expect=200)
    assert body["data"] == []                                     # LIKE wildcards are matched literally
    _, body = await admin.call("GET", "/api/v1/audit/events", a, params={"actor": f"user:{a.user_id}"}, expect=200)
    assert body["data"] and all(e["actor"] == f"user:{a.user_id}" for e in body["data"])
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _, body = await admin.call("GET", "/api/v1/audit/events", a, params={"from": future}, expect=200)
    assert body["data"] == []
    _, body = await admin.call("GET", "/api/v1/audit/events", a, params={"to": future}, expect=200)
    assert body["meta"]["pagination"]["total_count"] == len(body["data"]) >= 4
    status, problem = await admin.call("GET", "/api/v1/audit/events", a, params={"from": "2026-01-01T00:00:00"})
    assert (status, problem["errors"][0]["field"]) == (400, "from")


async def test_cursor_pagination_walks_every_event_once_newest_first(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    a, _ = orgs
    await _policies(admin, a, [f"p{i}" for i in range(7)])
    _, first = await admin.call("GET", "/api/v1/audit/events", a, params={"limit": "200"}, expect=200)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        _, page = await admin.call("GET", "/api/v1/audit/events", a, params=params, expect=200)
        seen += [e["id"] for e in page["data"]]
        cursor = page["meta"]["pagination"]["next_cursor"]
        if not page["meta"]["pagination"]["has_more"]:
            break
    assert seen == [e["id"] for e in first["data"]] == sorted(seen, reverse=True)


async def test_one_event_has_its_leaf_index_and_other_tenants_get_404(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    a, b = orgs
    _, body = await admin.call("GET", "/api/v1/audit/events", a, expect=200)
    oldest = body["data"][-1]
    _, one = await admin.call("GET", f"/api/v1/audit/events/{oldest['id']}", a, expect=200)
    assert one["data"] == {**oldest, "leaf_index": 0}
    for path in (f"/api/v1/audit/events/{oldest['id']}", f"/api/v1/audit/events/{oldest['id']}/proof",
                 "/api/v1/audit/events/not-a-uuid"):
        status, problem = await admin.call("GET", path, b)
        assert (status, problem["error_code"]) == (404, "ADM-404")


async def _download(admin: AdminHarness, org: Org, path: str, **params: str) -> tuple[str, str]:
    resp = await admin.client.get(path, headers=org.auth, params=params)
    assert resp.status == 200
    assert resp.headers["X-Request-ID"]
    return resp.headers["Content-Type"], await resp.text()


async def test_csv_and_jsonl_exports_round_trip_the_listing_with_the_same_filters(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    a, b = orgs
    await _policies(admin, a, ["comma, \"quoted\"\nnewline", "ünïcode"])
    await admin.call("POST", "/api/v1/keys", a, json={"name": "k"}, expect=201)
    for params in ({}, {"action": "policy.create"}, {"q": "ünï"}):
        _, listing = await admin.call("GET", "/api/v1/audit/events", a, params={"limit": "200", **params},
                                      expect=200)
        expected = list(reversed(listing["data"]))                   # exports run oldest first
        ctype, text = await _download(admin, a, "/api/v1/audit/export/jsonl", **params)
        assert ctype == "application/x-ndjson"
        assert [json.loads(line) for line in text.splitlines()] == expected
        ctype, text = await _download(admin, a, "/api/v1/audit/export/csv", **params)
        assert ctype.startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        parsed = [{**r, "details": json.loads(r["details"]),
                   **{k: (r[k] or None) for k in ("tenant_id", "resource_id", "request_id")}} for r in rows]
        assert parsed == [{k: e[k] for k in rows[0]} if rows else e for e in expected]
    _, text = await _download(admin, b, "/api/v1/audit/export/jsonl")
    assert all(json.loads(line)["tenant_id"] == b.tenant_id for line in text.splitlines())


async def test_csv_export_neutralises_formula_cells_and_jsonl_keeps_the_exact_values(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    a, _ = orgs
    payload = "=cmd|' /C calc'!A0"
    hostile = [("actor", payload), ("actor", "+1+1"), ("resource_type", "-2+3"), ("resource_id", "@SUM(A1:A9)"),
               ("request_id", "\t=1+1"), ("resource_id", "\r=HYPERLINK(\"http://evil\")")]
    await admin.store.write_audit_events([
        {"tenant_id": a.tenant_id, "action": f"test.formula.{i}", "actor": "user:x", "resource_type": "thing",
         "details": {"note": payload}, **{column: value}} for i, (column, value) in enumerate(hostile)])
    params = {"q": "test.formula"}
    _, text = await _download(admin, a, "/api/v1/audit/export/csv", **params)
    rows = {r["action"]: r for r in csv.DictReader(io.StringIO(text, newline=""))}
    assert len(rows) == len(hostile)
    for i, (column, value) in enumerate(hostile):
        row = rows[f"test.formula.{i}"]
        assert row[column] == "'" + value                       # shown as text, never evaluated
        assert json.loads(row["details"]) == {"note": payload}  # a JSON object cell starts with "{": left as is
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())
    _, text = await _download(admin, a, "/api/v1/audit/export/jsonl", **params)
    exact = {e["action"]: e for e in map(json.loads, text.splitlines())}
    assert [exact[f"test.formula.{i}"][column] for i, (column, _) in enumerate(hostile)] == [v for _, v in hostile]


async def test_purge_deletes_expired_events_keeps_the_log_verifiable_and_leaves_its_own_event(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    a, b = orgs
    old = datetime.now(UTC) - timedelta(days=40)
    await admin.store.write_audit_events([
        {"tenant_id": a.tenant_id, "ts": old, "actor": "system", "action": "gateway.request.blocked",
         "resource_type": "request", "details": {"n": i}} for i in range(3)])
    await admin.store.write_gateway_requests([{"tenant_id": a.tenant_id, "status": 422, "ts": old}])
    _, policy = await admin.call("PUT", "/api/v1/audit/retention", a, json={"audit_days": 30, "request_log_days": 7},
                                 expect=200)
    assert policy["data"]["audit_days"] == 30 and policy["data"]["updated_by"] == f"user:{a.user_id}"
    _, before = await admin.call("GET", "/api/v1/transparency-log/sth", a, expect=200)
    _, result = await admin.call("POST", "/api/v1/audit/retention/purge", a, expect=200)
    assert (result["data"]["audit_events"], result["data"]["gateway_requests"]) == (3, 1)
    _, blocked = await admin.call("GET", "/api/v1/audit/events", a, params={"action": "gateway.request.blocked"},
                                  expect=200)
    assert blocked["data"] == []
    _, purge = await admin.call("GET", "/api/v1/audit/events", a, params={"action": "retention.purge"}, expect=200)
    assert purge["data"][0]["details"]["audit_events"] == 3
    _, keys = await admin.call("GET", "/api/v1/transparency-log/keys", a, expect=200)
    key = base64.b64decode(keys["data"][0]["public_key"])
    resp = await admin.client.get("/api/v1/transparency-log/entries", headers=a.auth,
                                  params={"tree_size": str(before["data"]["tree_size"])})
    message = verify_log(before["data"], (await resp.text()).splitlines(), key)
    assert "(3 purged by retention)" in message
    _, b_blocked = await admin.call("GET", "/api/v1/audit/retention", b, expect=200)
    assert b_blocked["data"]["audit_days"] is None                # B's policy untouched


async def test_retention_writes_need_tenants_write(admin: AdminHarness, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    _, body = await admin.call("POST", "/api/v1/keys", a, json={"name": "auditor", "role": "auditor"}, expect=201)
    raw = body["data"]["key"]
    await admin.call("GET", "/api/v1/audit/retention", raw, expect=200)
    status, problem = await admin.call("PUT", "/api/v1/audit/retention", raw,
                                       json={"audit_days": 1, "request_log_days": None})
    assert (status, problem["error_code"]) == (403, "AUTH-003")
