"""Operators: redact, mask, hash, placeholder, tokenize (+ restore, streamed), block."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from detectors.operators import StreamRestorer, TokenVault, apply, resolve_overlaps

KEY = b"k" * 32


@dataclass(frozen=True)
class F:
    entity_type: str
    start: int
    end: int
    score: float = 1.0


def _find(text: str, value: str, entity: str, score: float = 1.0) -> F:
    start = text.index(value)
    return F(entity, start, start + len(value), score)


TEXT = "Mail jane@example.com or call 212-555-0147, card 4111-1111-1111-1111."


def _findings() -> list[F]:
    return [
        _find(TEXT, "jane@example.com", "EMAIL_ADDRESS"),
        _find(TEXT, "212-555-0147", "PHONE_NUMBER"),
        _find(TEXT, "4111-1111-1111-1111", "CREDIT_CARD"),
    ]


def test_redact_replaces_with_marker_or_removes() -> None:
    out = apply(TEXT, _findings(), {"*": "redact"}, hmac_key=KEY, vault=None)
    assert out.text == "Mail [REDACTED] or call [REDACTED], card [REDACTED]."
    removed = apply(
        TEXT, _findings(), {"*": "redact"}, hmac_key=KEY, vault=None, redact_with=""
    )
    assert removed.text == "Mail  or call , card ."


def test_mask_keeps_last_four_alphanumerics_and_separators() -> None:
    out = apply(
        TEXT,
        _findings(),
        {"CREDIT_CARD": "mask", "*": "keep"},
        hmac_key=KEY,
        vault=None,
    )
    assert out.text == TEXT.replace("4111-1111-1111-1111", "****-****-****-1111")
    assert [r.operator for r in out.replaced] == ["mask"]


def test_hash_is_keyed_stable_and_typed() -> None:
    a = apply(TEXT, _findings(), {"*": "hash"}, hmac_key=KEY, vault=None)
    b = apply(TEXT, _findings(), {"*": "hash"}, hmac_key=KEY, vault=None)
    c = apply(TEXT, _findings(), {"*": "hash"}, hmac_key=b"other-key", vault=None)
    assert a.text == b.text != c.text
    assert "jane@example.com" not in a.text
    token = a.replaced[0].text
    assert (
        token.startswith("<EMAIL_ADDRESS:")
        and len(token) == len("<EMAIL_ADDRESS:>") + 16
    )


def test_placeholder_names_the_type() -> None:
    out = apply(TEXT, _findings(), {"*": "placeholder"}, hmac_key=KEY, vault=None)
    assert (
        out.text == "Mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>, card <CREDIT_CARD>."
    )


def test_replacement_offsets_point_into_the_output() -> None:
    out = apply(TEXT, _findings(), {"*": "placeholder"}, hmac_key=KEY, vault=None)
    for r in out.replaced:
        assert out.text[r.new_start : r.new_end] == r.text
        assert TEXT[r.start : r.end] != r.text


def test_block_reports_type_and_leaves_text() -> None:
    out = apply(
        TEXT,
        _findings(),
        {"CREDIT_CARD": "block", "*": "keep"},
        hmac_key=KEY,
        vault=None,
    )
    assert out.blocked_types == ("CREDIT_CARD",)
    assert out.text == TEXT


def test_tokenize_same_value_same_token_and_restore_roundtrip() -> None:
    text = "a@x.io wrote to b@y.io and again to a@x.io"
    third = text.rindex("a@x.io")
    findings = [
        F("EMAIL_ADDRESS", 0, 6),
        _find(text, "b@y.io", "EMAIL_ADDRESS"),
        F("EMAIL_ADDRESS", third, third + 6),
    ]
    vault = TokenVault()
    out = apply(text, findings, {"*": "tokenize"}, hmac_key=KEY, vault=vault)
    assert out.text == "<EMAIL_1> wrote to <EMAIL_2> and again to <EMAIL_1>"
    assert vault.restore(out.text) == text
    assert vault.restore("unknown <EMAIL_9> stays") == "unknown <EMAIL_9> stays"


def test_tokenize_without_vault_is_an_error() -> None:
    with pytest.raises(ValueError):
        apply(TEXT, _findings(), {"*": "tokenize"}, hmac_key=KEY, vault=None)


def test_unknown_operator_is_an_error() -> None:
    with pytest.raises(ValueError):
        apply(TEXT, _findings(), {"*": "shred"}, hmac_key=KEY, vault=None)


def test_overlaps_resolved_by_score_then_length() -> None:
    text = "call 4111111111111111 now"
    card = F("CREDIT_CARD", 5, 21, 1.0)
    bank = F("US_BANK_NUMBER", 5, 21, 0.05)
    phone = F("PHONE_NUMBER", 9, 21, 1.0)
    assert resolve_overlaps([bank, phone, card]) == [card]
    out = apply(
        text, [bank, phone, card], {"*": "placeholder"}, hmac_key=KEY, vault=None
    )
    assert out.text == "call <CREDIT_CARD> now"


def _vault_with(*values: tuple[str, str]) -> TokenVault:
    vault = TokenVault()
    for entity, value in values:
        vault.token_for(entity, value)
    return vault


@pytest.mark.parametrize(
    "chunks",
    [
        ["Hello <EMAIL_1> and <PHONE_NUMBER_2>!"],
        ["Hello <EMA", "IL_1> and <PHONE_NUMBER_2>!"],
        ["Hello <", "EMAIL_1", "> and <PHONE_", "NUMB", "ER_2>!"],
        ["Hello <EMAIL_1", "> and <PHONE_NUMBER_2", ">", "!"],
    ],
)
def test_stream_restorer_restores_tokens_split_across_chunks(chunks: list[str]) -> None:
    vault = _vault_with(
        ("EMAIL_ADDRESS", "jane@example.com"), ("PHONE_NUMBER", "212-555-0147")
    )
    restorer = StreamRestorer(vault)
    out = "".join(restorer.feed(c) for c in chunks) + restorer.flush()
    assert out == "Hello jane@example.com and 212-555-0147!"


def test_stream_restorer_holds_back_only_a_possible_token_prefix() -> None:
    vault = _vault_with(("EMAIL_ADDRESS", "jane@example.com"))
    restorer = StreamRestorer(vault)
    assert restorer.feed("a < b and <EM") == "a < b and "
    assert restorer.feed("PHASIS> text <") == "<EMPHASIS> text "
    assert restorer.feed("div>") == "<div>"
    assert restorer.feed("end <EMAIL_") == "end "
    assert restorer.flush() == "<EMAIL_"


def test_stream_restorer_without_tokens_passes_text_through() -> None:
    restorer = StreamRestorer(TokenVault())
    assert restorer.feed("x <EMAIL_") == "x <EMAIL_"
    assert restorer.flush() == ""
