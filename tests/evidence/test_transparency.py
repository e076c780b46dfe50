"""The transparency log end to end: signed heads and proofs from the API, checked by the standalone verifier.

Tampering is done the way an attacker with database access would: straight SQL on the stored rows.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from casemate_verify.cli import verify_log
from casemate_verify.merkle import ProofError
from tests.admin.conftest import AdminHarness, Org

ROOT = Path(__file__).resolve().parents[2]


def _verify(tmp_path: Path, key: str, command: str, *docs: Any) -> subprocess.CompletedProcess[str]:
    files = []
    for i, doc in enumerate(docs):
        path = tmp_path / f"{command}-{i}.json"
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
        files.append(str(path))
    return subprocess.run([sys.executable, "-m", "casemate_verify", "--public-key", key, command, *files],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


async def _make_events(admin: AdminHarness, org: Org, n: int) -> None:
    for i in range(n):
        await admin.call("POST", "/api/v1/policies", org, json={"name": f"p{i}", "document": {}}, expect=201)


async def _public_key(admin: AdminHarness, org: Org) -> str:
    _, body = await admin.call("GET", "/api/v1/transparency-log/keys", org, expect=200)
    (key,) = [k for k in body["data"] if k["current"]]
    return key["public_key"]


async def _entries(admin: AdminHarness, org: Org) -> str:
    resp = await admin.client.get("/api/v1/transparency-log/entries", headers=org.auth)
    assert resp.status == 200 and resp.content_type == "application/x-ndjson"
    return await resp.text()


async def test_every_written_event_gets_a_leaf_and_the_event_proof_verifies_offline(
    admin: AdminHarness, orgs: tuple[Org, Org], tmp_path: Path
) -> None:
    a, _ = orgs
    await _make_events(admin, a, 5)
    _, listing = await admin.call("GET", "/api/v1/audit/events", a, expect=200)
    _, size = await admin.call("GET", "/api/v1/transparency-log/size", a, expect=200)
    assert size["data"] == {"log_id": a.tenant_id, "tree_size": listing["meta"]["pagination"]["total_count"]}
    key = await _public_key(admin, a)
    for event in listing["data"]:
        _, bundle = await admin.call("GET", f"/api/v1/audit/events/{event['id']}/proof", a, expect=200)
        result = _verify(tmp_path, key, "event", bundle)
        assert result.returncode == 0, result.stderr
        assert f"event {event['id']} is leaf" in result.stdout


async def test_editing_a_stored_event_makes_its_proof_and_the_log_check_fail(
    admin: AdminHarness, orgs: tuple[Org, Org], tmp_path: Path
) -> None:
    a, _ = orgs
    await _make_events(admin, a, 3)
    key = await _public_key(admin, a)
    _, sth = await admin.call("GET", "/api/v1/transparency-log/sth", a, expect=200)
    _, listing = await admin.call("GET", "/api/v1/audit/events", a, params={"action": "policy.create"}, expect=200)
    victim = listing["data"][1]["id"]
    assert _verify(tmp_path, key, "log", sth["data"], await _entries(admin, a)).returncode == 0

    async with admin.store.db.transaction() as conn:
        await conn.execute("UPDATE audit_events SET actor = $1 WHERE id = $2", "user:someone-else", victim)
    _, bundle = await admin.call("GET", f"/api/v1/audit/events/{victim}/proof", a, expect=200)
    result = _verify(tmp_path, key, "event", bundle)
    assert result.returncode == 1
    assert "INVALID: inclusion proof does not lead to the tree head's root hash" in result.stderr
    result = _verify(tmp_path, key, "log", sth["data"], await _entries(admin, a))
    assert result.returncode == 1
    assert f"event {victim}" in result.stderr and "it was edited" in result.stderr


async def test_editing_the_details_of_any_event_is_detected_by_the_log_check(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    a, _ = orgs
    await _make_events(admin, a, 2)
    _, sth = await admin.call("GET", "/api/v1/transparency-log/sth", a, expect=200)
    key = base64.b64decode(await _public_key(admin, a))
    _, listing = await admin.call("GET", "/api/v1/audit/events", a, params={"limit": "200"}, expect=200)
    assert len(listing["data"]) == sth["data"]["tree_size"]
    for event in listing["data"]:
        async with admin.store.db.transaction() as conn:
            await conn.execute("UPDATE audit_events SET details = $1 WHERE id = $2", {"forged": True}, event["id"])
        with pytest.raises(ProofError, match=f"event {event['id']} .* it was edited"):
            verify_log(sth["data"], (await _entries(admin, a)).splitlines(), key)
        # the same edit with the stored leaf hash dropped (as an attacker would) breaks the root instead
        stripped = [json.dumps({k: v for k, v in json.loads(line).items() if k != "leaf_hash"})
                    for line in (await _entries(admin, a)).splitlines()]
        with pytest.raises(ProofError, match="do not hash to the signed root"):
            verify_log(sth["data"], stripped, key)
        async with admin.store.db.transaction() as conn:
            await conn.execute("UPDATE audit_events SET details = $1 WHERE id = $2", event["details"], event["id"])
    assert verify_log(sth["data"], (await _entries(admin, a)).splitlines(), key).startswith("valid")


async def test_deleting_a_stored_event_makes_the_log_check_fail(
    admin: AdminHarness, orgs: tuple[Org, Org], tmp_path: Path
) -> None:
    a, _ = orgs
    await _make_events(admin, a, 3)
    key = await _public_key(admin, a)
    _, sth = await admin.call("GET", "/api/v1/transparency-log/sth", a, expect=200)
    _, listing = await admin.call("GET", "/api/v1/audit/events", a, params={"action": "policy.create"}, expect=200)
    victim = listing["data"][0]
    async with admin.store.db.transaction() as conn:
        await conn.execute("DELETE FROM audit_events WHERE id = $1", victim["id"])
    entries = await _entries(admin, a)
    result = _verify(tmp_path, key, "log", sth["data"], entries)
    assert result.returncode == 1
    assert "has no event and retention did not purge it: the event was deleted" in result.stderr
    hidden = "".join(line for line in entries.splitlines(keepends=True) if '"id"' in line)
    result = _verify(tmp_path, key, "log", sth["data"], hidden)
    assert result.returncode == 1 and "missing" in result.stderr
    status, _ = await admin.call("GET", f"/api/v1/audit/events/{victim['id']}/proof", a)
    assert status == 404


async def test_a_later_tree_head_is_provably_an_extension_of_an_earlier_one(
    admin: AdminHarness, orgs: tuple[Org, Org], tmp_path: Path
) -> None:
    a, _ = orgs
    key = await _public_key(admin, a)
    _, old = await admin.call("POST", "/api/v1/transparency-log/sth", a, expect=201)
    await _make_events(admin, a, 4)
    _, new = await admin.call("GET", "/api/v1/transparency-log/sth", a, expect=200)
    assert new["data"]["tree_size"] == old["data"]["tree_size"] + 4
    _, proof = await admin.call("GET", "/api/v1/transparency-log/consistency", a, expect=200, params={
        "first": str(old["data"]["tree_size"]), "second": str(new["data"]["tree_size"])})
    result = _verify(tmp_path, key, "consistency", old["data"], new["data"], proof["data"])
    assert result.returncode == 0, result.stderr
    forged = {**old["data"], "root_hash": "ab" * 32}
    result = _verify(tmp_path, key, "consistency", forged, new["data"], proof["data"])
    assert result.returncode == 1 and "signature is invalid" in result.stderr


async def test_inclusion_proof_endpoint_matches_the_signed_head(
    admin: AdminHarness, orgs: tuple[Org, Org]
) -> None:
    from casemate_verify.merkle import verify_inclusion
    from casemate_verify.sth import TreeHead

    a, _ = orgs
    await _make_events(admin, a, 6)
    _, size = await admin.call("GET", "/api/v1/transparency-log/size", a, expect=200)
    n = size["data"]["tree_size"]
    for index in range(n):
        _, body = await admin.call("GET", f"/api/v1/transparency-log/proof/{index}", a, expect=200)
        d = body["data"]
        head = TreeHead.from_json(d["sth"])
        verify_inclusion(bytes.fromhex(d["leaf_hash"]), index, head.tree_size, [bytes.fromhex(p) for p in d["proof"]],
                         head.root_hash)
    status, problem = await admin.call("GET", f"/api/v1/transparency-log/proof/{n}", a)
    assert (status, problem["error_code"]) == (404, "ADM-404")


async def test_a_wrong_public_key_is_refused_with_its_key_id(
    admin: AdminHarness, orgs: tuple[Org, Org], tmp_path: Path
) -> None:
    a, _ = orgs
    _, listing = await admin.call("GET", "/api/v1/audit/events", a, expect=200)
    _, bundle = await admin.call("GET", f"/api/v1/audit/events/{listing['data'][0]['id']}/proof", a, expect=200)
    result = _verify(tmp_path, "11" * 32, "event", bundle)
    assert result.returncode == 1 and "not by the given key" in result.stderr
