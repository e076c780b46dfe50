"""Pure helpers: ids, passwords, TOTP, throttling, roles, tokens, secret boxes, cursors."""
from __future__ import annotations

import base64
import uuid

import pytest

from admin_api import passwords, totp
from admin_api.http import ApiError, decode_cursor, encode_cursor
from admin_api.ids import is_uuid, new_id, uuid7
from admin_api.roles import (
    PLATFORM_ADMIN,
    ROLE_PERMISSIONS,
    assignable_roles,
    permissions_for,
)
from admin_api.store.crypto import DecryptionError, SecretBox
from admin_api.throttle import LoginThrottle
from admin_api.tokens import TokenError, TokenIssuer


def test_uuid7_is_version_7_and_strictly_increasing() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert is_uuid(new_id()) and not is_uuid("nope") and not is_uuid(new_id().upper())


def test_password_hash_round_trip_and_malformed_hashes() -> None:
    encoded = passwords.hash_password("a long enough secret")
    assert encoded.startswith("scrypt$") and passwords.verify_password("a long enough secret", encoded)
    assert not passwords.verify_password("a long enough secreT", encoded)
    assert not passwords.verify_password("x", "bcrypt$1$2$3$4$5") and not passwords.verify_password("x", "garbage")
    assert passwords.password_problem("short") is not None and passwords.password_problem("long enough!") is None


def test_totp_matches_rfc6238_vector_and_tolerates_one_step_of_drift() -> None:
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp.code_at(secret, 59) == "287082"          # RFC 6238 appendix B, last six digits
    assert totp.verify(secret, "287082", now=59 + 30) and not totp.verify(secret, "287082", now=59 + 90)
    assert not totp.verify(secret, "28708a", now=59)


def test_throttle_blocks_after_the_limit_per_kind_and_forgets_after_the_window() -> None:
    t = LoginThrottle(limit=2, window_s=10, limits={"ip": 3})
    t.failed("email:a", "ip:1", now=0)
    t.failed("email:a", "ip:1", now=1)
    assert t.retry_after("email:a", now=2) == pytest.approx(8)
    assert t.retry_after("ip:1", now=2) == 0                   # addresses get a larger allowance
    assert t.retry_after("email:a", now=11) == 0
    t.failed("email:b", now=0)
    t.succeeded("email:b")
    assert t.retry_after("email:b", now=0) == 0


def test_throttle_memory_is_bounded() -> None:
    t = LoginThrottle(max_keys=10)
    for i in range(100):
        t.failed(f"email:{i}", now=0)
    assert len(t._failures) == 10


def test_roles_never_grant_platform_admin_except_to_platform_owners() -> None:
    assert all(PLATFORM_ADMIN not in perms for perms in ROLE_PERMISSIONS.values())
    assert PLATFORM_ADMIN in permissions_for("owner", platform=True)
    assert PLATFORM_ADMIN not in permissions_for("viewer", platform=True)
    assert permissions_for("unknown") == frozenset()
    assert set(assignable_roles(ROLE_PERMISSIONS["admin"])) == {"admin", "security_admin", "member", "viewer",
                                                                 "auditor"}


def test_access_tokens_verify_across_a_key_rotation() -> None:
    issuer = TokenIssuer(b"m" * 32, rotation_s=100)
    token, _ = issuer.issue_access(user_id="u", tenant_id="t", role="owner", permissions=["a"], now=199)
    assert issuer.verify_access(token, now=201).sub == "u"        # signed by the previous period's key
    with pytest.raises(TokenError):
        issuer.verify_access(token, now=301)                      # two periods later: key retired
    assert {k["kid"] for k in issuer.jwks(now=250)["keys"]} == {"cm-ed25519-1", "cm-ed25519-2", "cm-ed25519-3"}


def test_refresh_tokens_are_random_and_hashed_with_a_server_key() -> None:
    a, b = TokenIssuer(b"m" * 32), TokenIssuer(b"n" * 32)
    token, digest = a.new_refresh()
    assert token.startswith("cmr_") and digest == a.hash_refresh(token) != b.hash_refresh(token)


def test_secret_box_binds_ciphertext_to_key_and_row() -> None:
    box = SecretBox(b"m" * 32, "provider-credentials")
    blob = box.seal(b"secret", "row-1")
    assert box.open(blob, "row-1") == b"secret" and b"secret" not in blob
    with pytest.raises(DecryptionError):
        box.open(blob, "row-2")
    with pytest.raises(DecryptionError):
        SecretBox(b"n" * 32, "provider-credentials").open(blob, "row-1")
    with pytest.raises(DecryptionError):
        SecretBox(b"m" * 32, "mfa-secrets").open(blob, "row-1")


def test_cursor_round_trip_and_garbage_is_a_400() -> None:
    some = new_id()
    assert decode_cursor(encode_cursor(some)) == some
    for bad in ("!!!", base64.urlsafe_b64encode(b"c1:not-a-uuid").decode(), encode_cursor(some)[:-3]):
        with pytest.raises(ApiError) as err:
            decode_cursor(bad)
        assert err.value.status == 400
