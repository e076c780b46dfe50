"""Streaming output scanner: matches across chunk boundaries, canary, system-prompt leak."""

from __future__ import annotations

import itertools

import pytest

from detectors.output import OutputFinding, OutputScanner

CANARY = "cmcanary-" + "0f1e2d3c4b5a6978"
SYSTEM_PROMPT = (
    "You are the support assistant of Northwind Bank. Never reveal account numbers, internal "
    "escalation codes or the names of other customers, and always answer in a formal tone."
)


@pytest.fixture(scope="module")
def scanner() -> OutputScanner:
    return OutputScanner()


def _stream(
    scanner: OutputScanner, chunks: list[str], **kw: str | None
) -> list[OutputFinding]:
    session = scanner.open(kw.get("system_prompt"), kw.get("canary"))
    found: list[OutputFinding] = []
    for chunk in chunks:
        found += session.feed(chunk)
    return found + session.close()


def _split(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def test_email_split_across_chunks_is_found_at_its_cumulative_offsets(
    scanner: OutputScanner,
) -> None:
    text = "Sure, you can reach the team at support.desk@northwind-bank.com any time."
    at = text.index("@")
    found = _stream(scanner, _split(text, [at - 3, at + 2, at + 9]))
    emails = [f for f in found if f.type == "EMAIL_ADDRESS"]
    assert [(f.kind, text[f.start : f.end]) for f in emails] == [
        ("pii", "support.desk@northwind-bank.com")
    ]


def test_card_number_split_across_chunks_is_luhn_checked_on_all_digits(
    scanner: OutputScanner,
) -> None:
    valid = "Card on file: 4111 1111 1111 1111, expiring soon."
    invalid = "Card on file: 4111 1111 1111 1112, expiring soon."
    cut = valid.index("1111 1111") + 4
    assert [
        valid[f.start : f.end]
        for f in _stream(scanner, _split(valid, [cut]))
        if f.type == "CREDIT_CARD"
    ] == ["4111 1111 1111 1111"]
    assert [
        f for f in _stream(scanner, _split(invalid, [cut])) if f.type == "CREDIT_CARD"
    ] == []


def test_secret_split_across_three_chunks_is_found(scanner: OutputScanner) -> None:
    key = "gh" + "p_" + "Zq4Lm8Rt2VxK9mPzL4wN8bYc3HfJ6dGs1TkQ"
    text = f"Use the token {key} to push."
    start = text.index(key)
    found = _stream(scanner, _split(text, [start + 2, start + 15, start + 30]))
    secrets = [
        (f.kind, f.type, text[f.start : f.end]) for f in found if f.kind == "secret"
    ]
    assert secrets == [("secret", "github_token", key)]


def test_canary_split_across_chunks_is_reported(scanner: OutputScanner) -> None:
    text = f"My hidden marker is {CANARY} as requested."
    start = text.index(CANARY)
    found = _stream(scanner, _split(text, [start + 4, start + 14]), canary=CANARY)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [("canary", CANARY)]


def test_other_requests_canary_is_not_confused_with_ours(
    scanner: OutputScanner,
) -> None:
    other = "cmcanary-" + "aaaaaaaaaaaaaaaa"
    assert scanner.scan_text(f"text {other} text", canary=CANARY) == []


def test_system_prompt_leak_across_chunks_is_reported_once(
    scanner: OutputScanner,
) -> None:
    leaked = "My instructions: " + SYSTEM_PROMPT.lower() + " That is all."
    chunks = [leaked[i : i + 7] for i in range(0, len(leaked), 7)]
    found = _stream(scanner, chunks, system_prompt=SYSTEM_PROMPT)
    leaks = [f for f in found if f.kind == "system_prompt_leak"]
    assert len(leaks) == 1
    span = leaked[leaks[0].start : leaks[0].end]
    assert span.startswith("you are the support assistant") and len(span.split()) >= 10


def test_paraphrase_sharing_words_is_not_a_leak(scanner: OutputScanner) -> None:
    answer = (
        "As the bank's assistant I answer formally, and I cannot share account numbers or other "
        "customers' names, nor internal codes."
    )
    assert [
        f
        for f in scanner.scan_text(answer, system_prompt=SYSTEM_PROMPT)
        if f.kind == "system_prompt_leak"
    ] == []


def test_clean_answer_yields_nothing(scanner: OutputScanner) -> None:
    answer = (
        "Photosynthesis converts light energy into chemical energy stored in glucose. "
        * 20
    )
    assert (
        _stream(
            scanner,
            [answer[i : i + 13] for i in range(0, len(answer), 13)],
            system_prompt=SYSTEM_PROMPT,
        )
        == []
    )


def test_non_streamed_scan_matches_streamed_scan(scanner: OutputScanner) -> None:
    text = f"Mail a.b@example.org, call (212) 555-0147, marker {CANARY}."
    whole = sorted(
        (f.kind, f.type, f.start, f.end) for f in scanner.scan_text(text, canary=CANARY)
    )
    streamed = sorted(
        (f.kind, f.type, f.start, f.end)
        for f in _stream(
            scanner, [text[i : i + 5] for i in range(0, len(text), 5)], canary=CANARY
        )
    )
    assert whole == streamed
    assert {t for _, t, _, _ in whole} >= {"EMAIL_ADDRESS", "PHONE_NUMBER", "canary"}


def test_non_ascii_output_keeps_character_offsets(scanner: OutputScanner) -> None:
    text = "Grüße — écrivez à jürgen.müller@example.de, merci."
    found = _stream(scanner, [text[:20], text[20:33], text[33:]])
    assert [text[f.start : f.end] for f in found if f.type == "EMAIL_ADDRESS"] == [
        "jürgen.müller@example.de"
    ]


def test_feeding_a_closed_session_is_an_error(scanner: OutputScanner) -> None:
    session = scanner.open()
    session.close()
    with pytest.raises(RuntimeError):
        session.feed("more")


def test_unsupported_stream_type_is_refused() -> None:
    with pytest.raises(ValueError):
        OutputScanner(pii_types=["PERSON"], secrets=False)
