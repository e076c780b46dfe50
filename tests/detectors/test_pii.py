"""PII detector: real Presidio recognizers behind the Hyperscan prefilter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from detectors.pii import DEFAULT_ENTITIES, PiiDetector, PiiFinding, presidio_engine

EVAL_DIR = Path("/work/shared/eval")


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return PiiDetector()


@pytest.fixture(scope="module")
def engine():
    return presidio_engine()


def _types(findings: list[PiiFinding]) -> set[str]:
    return {f.entity_type for f in findings}


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        (
            "write to jane.doe@example.com today",
            "EMAIL_ADDRESS",
            "jane.doe@example.com",
        ),
        ("call me on (212) 555-0147 tonight", "PHONE_NUMBER", "(212) 555-0147"),
        ("my card is 4111 1111 1111 1111 thanks", "CREDIT_CARD", "4111 1111 1111 1111"),
        (
            "pay to GB82 WEST 1234 5698 7654 32 please",
            "IBAN_CODE",
            "GB82 WEST 1234 5698 7654 32",
        ),
        ("ssn 536-22-8726 on file", "US_SSN", "536-22-8726"),
        ("server at 192.168.10.25 is down", "IP_ADDRESS", "192.168.10.25"),
        (
            "or the v6 address 2001:db8::8a2e:370:7334 too",
            "IP_ADDRESS",
            "2001:db8::8a2e:370:7334",
        ),
        (
            "see https://www.example.org/path?q=1 for more",
            "URL",
            "https://www.example.org/path?q=1",
        ),
        (
            "send to 1BoatSLRHtKNngkdXEeobR76b53LETtpyT now",
            "CRYPTO",
            "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
        ),
        ("the nic 00:1A:2B:3C:4D:5E died", "MAC_ADDRESS", "00:1A:2B:3C:4D:5E"),
        ("born on 1990-04-12 in a town", "DATE_TIME", "1990-04-12"),
        ("nhs number 943 476 5919 here", "UK_NHS", "943 476 5919"),
    ],
)
def test_each_entity_family_is_found_with_its_exact_span(
    detector: PiiDetector, text: str, entity: str, value: str
) -> None:
    spans = {(f.entity_type, text[f.start : f.end]) for f in detector.scan(text)}
    assert (entity, value) in spans


def test_luhn_invalid_card_number_is_rejected(detector: PiiDetector) -> None:
    assert "CREDIT_CARD" not in _types(
        detector.scan("my card is 4111 1111 1111 1112 thanks")
    )


def test_iban_with_bad_checksum_is_rejected(detector: PiiDetector) -> None:
    assert "IBAN_CODE" not in _types(
        detector.scan("pay to GB82 WEST 1234 5698 7654 33 please")
    )


def test_clean_text_yields_nothing(detector: PiiDetector) -> None:
    assert (
        detector.scan(
            "Please summarise the attached article about river ecology in two paragraphs."
        )
        == []
    )


def test_entity_selection_limits_the_output(engine) -> None:
    only_email = PiiDetector(entities=["EMAIL_ADDRESS"])
    text = "mail jane.doe@example.com or call (212) 555-0147"
    assert _types(only_email.scan(text)) == {"EMAIL_ADDRESS"}


def test_unknown_entity_is_refused() -> None:
    with pytest.raises(ValueError):
        PiiDetector(entities=["NOT_A_TYPE"])


def test_non_ascii_text_keeps_character_offsets(detector: PiiDetector) -> None:
    text = "Grüße aus Köln — schreib an jürgen@example.de, Tel. 030 12345678"
    found = {(f.entity_type, text[f.start : f.end]) for f in detector.scan(text)}
    assert ("EMAIL_ADDRESS", "jürgen@example.de") in found


def _sample_texts(every: int) -> list[str]:
    texts: list[str] = []
    for name in ("pii_presidio_synth_v2.jsonl", "pii_presidio_generated_large.jsonl"):
        with open(EVAL_DIR / name, encoding="utf-8") as fh:
            texts.extend(
                json.loads(line)["text"] for i, line in enumerate(fh) if i % every == 0
            )
    return texts


@pytest.mark.parametrize("threshold", [0.0, 0.4])
def test_results_equal_plain_presidio_on_dev_sample(engine, threshold: float) -> None:
    detector = PiiDetector(score_threshold=threshold)
    texts = _sample_texts(every=7)
    assert len(texts) > 200
    mismatches = []
    for text in texts:
        ours = {
            (f.entity_type, f.start, f.end, round(f.score, 9))
            for f in detector.scan(text)
        }
        ref = engine.analyze(
            text,
            language="en",
            entities=list(DEFAULT_ENTITIES),
            score_threshold=threshold,
        )
        theirs = {(r.entity_type, r.start, r.end, round(r.score, 9)) for r in ref}
        if ours != theirs:
            mismatches.append((text, ours ^ theirs))
    assert mismatches == []


def test_results_equal_presidio_on_adversarial_layouts(engine) -> None:
    detector = PiiDetector(score_threshold=0.0)
    texts = [
        "IBAN GB82 WEST ABCD EFGH IJKL MN and more words after it",
        "x" * 600 + " 4111 1111 1111 1111 " + "word " * 200,
        "numbers 12 34 56 78 90 12 34 56 78 90 12 34 56 and then words words",
        "mixed a1b2c3 and 555-0147 with ext. 12 and +44 20 7946 0958 and 01 23 45 67 89",
        "url example.community and e.g. foo.bar.io/path and 'www.test.com'",
        # non-ASCII text: byte offsets of the prefilter become character offsets
        "Grüße — am 12.03.2024 um 10:30, Karte 4111 1111 1111 1111, SSN 536-22-8726",
        "电话 ０３-１２３４-５６７８，日期 2024-01-02，编号 {{#1761815388187.name#}}",
        "٠٢٠ ٧٩٤٦ ٠٩٥٨ and 192.168.0.1 then 01/02/2023",
        # a lone surrogate: every gated recognizer runs
        "bad \ud800 byte then 123-45-6789 and 2024-01-02 and 4111-1111-1111-1111",
    ]
    for text in texts:
        ours = {(f.entity_type, f.start, f.end) for f in detector.scan(text)}
        theirs = {
            (r.entity_type, r.start, r.end)
            for r in engine.analyze(
                text,
                language="en",
                entities=list(DEFAULT_ENTITIES),
                score_threshold=0.0,
            )
        }
        assert ours == theirs, text


def test_ner_tier_is_opt_in_and_reports_its_availability() -> None:
    import spacy.util

    installed = any(
        spacy.util.is_package(m)
        for m in ("en_core_web_lg", "en_core_web_md", "en_core_web_sm")
    )
    assert PiiDetector().ner_available is False
    assert (
        PiiDetector(entities=["PERSON", "EMAIL_ADDRESS"], ner=True).ner_available
        is installed
    )


def test_ner_entities_are_refused_without_the_ner_tier() -> None:
    with pytest.raises(ValueError):
        PiiDetector(entities=["PERSON"])


def test_detector_never_touches_the_network() -> None:
    """tldextract (e-mail validation) must use its bundled suffix list, not fetch one."""
    probe = (
        "import socket\n"
        "attempts = []\n"
        "def refuse(*args, **kwargs):\n"
        "    attempts.append(args)\n"
        "    raise OSError('network disabled in test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from detectors.pii import PiiDetector\n"
        "found = PiiDetector().scan('mail jane.doe@example.co.uk or see https://example.org/x')\n"
        "assert {f.entity_type for f in found} >= {'EMAIL_ADDRESS', 'URL'}, found\n"
        "assert attempts == [], attempts\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k != "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"
    }
    done = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_numeric_recognizers_run_only_when_their_own_pattern_fires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three digits wake the numeric family's anchor; its pattern recognizers still stay idle
    unless one of their own regexes (compiled in Hyperscan prefilter mode) matches."""
    detector = PiiDetector()
    calls: dict[str, int] = {}
    for rec, _, fams in detector._recognizers:
        if "digits" not in fams:
            continue
        name = type(rec).__name__

        def counted(*args, _real=rec.analyze, _name=name, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(rec, "analyze", counted)
    assert detector.scan("We sold 250 units in 2023 and 75 more in Q4.") == []
    assert calls == {}
    found = detector.scan("born on 1990-04-12 in a town")
    assert [(f.entity_type, f.start, f.end) for f in found] == [("DATE_TIME", 8, 18)]
    assert calls.get("DateRecognizer") == 1
    assert "UsSsnRecognizer" not in calls
