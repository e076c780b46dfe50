"""Trust score: the documented formulas, decay and grades; computed from the organization's own data; a change
is recorded as `trust.score.updated` (and so reaches webhooks and /ws)."""
from __future__ import annotations

import asyncio

from admin_api.resources.trust import composite, decayed, grade, pillar_scores
from admin_api.store.evidence import AuditFilter
from tests.admin.conftest import AdminHarness, Org

QUIET = {"requests": 0, "blocked": 0, "errors": 0, "active_keys": 0, "keys_with_policy": 0, "tenant_policy": False,
         "recent_anomalies": 0, "pending_checks": 0, "kill_switches": 0, "providers": 2,
         "retention_configured": True}


def test_pillars_follow_the_documented_formulas() -> None:
    assert pillar_scores(QUIET, True) == {"security": 100, "ai_governance": 100, "compliance": 100,
                                          "resilience": 100, "risk": 100}
    busy = {**QUIET, "requests": 200, "blocked": 20, "errors": 5, "active_keys": 4, "keys_with_policy": 1,
            "recent_anomalies": 2, "pending_checks": 3, "kill_switches": 1, "providers": 1,
            "retention_configured": False}
    assert pillar_scores(busy, False) == {
        "security": 100 - 60 * 0.5 - 16,                  # block rate 10 % of the 20 % budget; two anomalies
        "ai_governance": 25,                              # one of four keys has a policy
        "compliance": 0,                                  # log fails, no retention
        "resilience": 70 * (1 - 0.025 / 0.05) + 15,       # 2.5 % errors of a 5 % budget; one provider
        "risk": 100 - 30 - 25,
    }
    assert composite({"security": 50, "ai_governance": 100, "compliance": 0, "resilience": 100, "risk": 100},
                     {"security": 1, "ai_governance": 1, "compliance": 0, "resilience": 0, "risk": 0}) == 75


def test_decay_moves_half_way_per_half_life_and_grades_have_fixed_thresholds() -> None:
    assert decayed(None, 40, 5, 24) == 40
    assert decayed(100, 40, 24, 24) == 70
    assert decayed(100, 40, 48, 24) == 55
    assert decayed(100, 40, 1, 0) == 40
    assert [grade(s) for s in (95, 90, 89.99, 80, 70, 60, 59.9)] == ["A", "A", "B", "B", "C", "D", "F"]


async def test_the_score_reflects_the_organizations_own_traffic_retention_and_log_integrity(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    a, b = orgs
    await admin.call("PUT", "/api/v1/trust/decay", a, json={"half_life_hours": 0}, expect=200)
    _, first = await admin.call("GET", "/api/v1/trust/pillars", a, expect=200)
    by_name = {p["name"]: p for p in first["data"]["pillars"]}
    assert by_name["compliance"]["score"] == 60 and first["data"]["inputs"]["log_verified"] is True
    await admin.store.write_gateway_requests(
        [{"tenant_id": a.tenant_id, "status": 422 if i % 2 else 200, "blocked": bool(i % 2)} for i in range(20)])
    await admin.call("PUT", "/api/v1/audit/retention", a, json={"audit_days": 365, "request_log_days": 30},
                     expect=200)
    _, current = await admin.call("GET", "/api/v1/trust/scores/current", a, expect=200)
    assert current["data"]["pillars"]["security"] == 40 and current["data"]["pillars"]["compliance"] == 100
    _, other = await admin.call("GET", "/api/v1/trust/scores/current", b, expect=200)
    assert other["data"]["pillars"]["security"] == 100           # B's score ignores A's traffic

    victim = (await admin.store.search_audit_events(a.tenant_id, AuditFilter(action="retention.update"))).items[0]
    async with admin.store.db.transaction() as conn:
        await conn.execute("UPDATE audit_events SET outcome = 'denied' WHERE id = $1", victim["id"])
    _, tampered = await admin.call("GET", "/api/v1/trust/scores/current", a, expect=200)
    assert tampered["data"]["pillars"]["compliance"] == 40
    _, history = await admin.call("GET", "/api/v1/trust/scores/history", a, expect=200)
    assert [h["id"] for h in history["data"]][:2] == [tampered["data"]["id"], current["data"]["id"]]
    _, updates = await admin.call("GET", "/api/v1/audit/events", a, params={"action": "trust.score.updated"},
                                  expect=200)
    assert updates["data"][0]["details"]["score"] == tampered["data"]["score"]


async def test_weights_are_configurable_and_a_new_event_triggers_a_recalculation(
    hooks_admin: tuple[AdminHarness, Org]
) -> None:
    admin, org = hooks_admin
    _, body = await admin.call("PUT", "/api/v1/trust/decay", org, expect=200,
                               json={"half_life_hours": 0, "weights": {"compliance": 1, "security": 0,
                                                                       "ai_governance": 0, "resilience": 0,
                                                                       "risk": 0}})
    assert body["data"]["weights"]["compliance"] == 1
    await admin.call("POST", "/api/v1/policies", org, json={"name": "p", "document": {}}, expect=201)
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        _, updates = await admin.call("GET", "/api/v1/audit/events", org, params={"action": "trust.score.updated"},
                                      expect=200)
        if updates["data"]:
            break
        assert asyncio.get_running_loop().time() < deadline, "no trust.score.updated event"
        await asyncio.sleep(0.2)
    assert updates["data"][0]["actor"] == "system:trust"
    assert updates["data"][0]["details"]["raw_score"] == 60     # compliance only: log verifies, no retention
