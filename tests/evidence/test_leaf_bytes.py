"""The audit writer's orjson leaf hash equals the stdlib reference verifiers use, byte for byte."""
from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta, timezone

from admin_api.store.leaf_bytes import fast_leaf_hash
from casemate_verify.canonical import leaf_hash, normalize_json


def _text(rng: random.Random) -> str:
    ranges = ((0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF))
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(0, 10)))


def _float(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.3:
        return rng.uniform(-1, 1) * 10 ** rng.uniform(-9, 20)     # the small floats orjson prints apart
    if pick < 0.5:
        return round(rng.random(), rng.randint(0, 6))
    if pick < 0.6:
        return rng.choice([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-4, 5e-324, 1e16])
    return struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]


def _value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.randint(0, 8 if depth < 4 else 5)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.randint(-2**70, 2**70) if rng.random() < 0.2 else rng.randint(-1000, 10**6)
    if pick == 3:
        return _float(rng)
    if pick in (4, 5):
        return _text(rng)
    if pick == 6:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _event(rng: random.Random) -> dict[str, object]:
    zone = rng.choice([UTC, timezone(timedelta(hours=rng.randint(-12, 12)))])
    ts = datetime(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                  rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999_999), tzinfo=zone)
    if ts.year < 3 or ts.year > 9997:
        ts = ts.replace(year=2026)        # keep the UTC conversion inside datetime's range
    return {
        "id": _text(rng) or "id", "tenant_id": rng.choice([None, _text(rng)]), "ts": ts,
        "actor": _text(rng) or "system", "action": _text(rng) or "a", "resource_type": rng.choice([None, "", "x"]),
        "resource_id": rng.choice([None, _text(rng), rng.randint(0, 99)]), "outcome": "success",
        "request_id": rng.choice([None, _text(rng)]), "details": normalize_json(_value(rng)) or {},
    }


def test_fast_leaf_hash_equals_the_reference_on_random_events() -> None:
    rng = random.Random(20261124)
    for _ in range(20_000):
        event = _event(rng)
        try:
            expected = leaf_hash(event, details_normalized=True)
        except (UnicodeEncodeError, ValueError):
            continue      # a document the reference cannot serialise is refused upstream as well
        assert fast_leaf_hash(event) == expected, event


def test_fast_leaf_hash_matches_on_a_typical_check_event_with_scores() -> None:
    base = {"id": "0194a0b0-0000-7000-8000-000000000000", "tenant_id": "t", "ts": datetime.now(UTC),
            "actor": "api_key:k", "action": "check.allowed", "resource_type": "tool_check", "resource_id": "c",
            "outcome": "success", "request_id": "r"}
    for score in (0.0, 0.25, 1e-4, 3.5e-5, 1e-7, 0.999999):
        event = {**base, "details": normalize_json({"anomaly_score": score, "signals": ["a", "b"], "n": None})}
        assert fast_leaf_hash(event) == leaf_hash(event, details_normalized=True)
