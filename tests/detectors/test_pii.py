"""PII detector: real Presidio recognizers behind the Hyperscan prefilter."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

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
        # URLs whose host runs far before the domain the anchor sees, glued to words and quotes
        "see " + "sub." * 70 + "example.international/a/b?c=d, then \"https://" + "a" * 200 + ".co.uk/x\" ok",
        "words words https://docs.example.com/" + "p" * 300 + " and 'example.org' and www2.test.photography",
        # non-ASCII text: byte offsets of the prefilter become character offsets
        "Grüße — am 12.03.2024 um 10:30, Karte 4111 1111 1111 1111, SSN 536-22-8726",
        "电话 ０３-１２３４-５６７８，日期 2024-01-02，编号 {{#1761815388187.name#}}",
        "٠٢٠ ٧٩٤٦ ٠٩٥٨ and 192.168.0.1 then 01/02/2023",
        # a lone surrogate: every gated recognizer runs
        "bad \ud800 byte then 123-45-6789 and 2024-01-02 and 4111-1111-1111-1111",
    ]
    _assert_equal_to_presidio(detector, engine, texts)


def _assert_equal_to_presidio(detector: PiiDetector, engine, texts) -> None:
    for text in texts:
        ours = {(f.entity_type, f.start, f.end, f.score) for f in detector.scan(text)}
        theirs = {
            (r.entity_type, r.start, r.end, r.score)
            for r in engine.analyze(
                text,
                language="en",
                entities=list(DEFAULT_ENTITIES),
                score_threshold=detector.score_threshold,
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


# --- Phone fast path: the gate and the shared candidate walk must equal libphonenumber ---

_PROPERTY_REGIONS: tuple[str, ...] = (
    *PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS,
    # other metadata shapes: four-digit numbers (AT, NU), transform rules that add digits
    # (AG, NF, GG), that reorder them (AR), leading zeros kept (IT), odd international
    # prefixes (JP, AU)
    "AT",
    "NU",
    "AG",
    "NF",
    "GG",
    "AR",
    "IT",
    "JP",
    "AU",
)
_NUMBER_TYPES = (
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.SHARED_COST,
)
_SEPARATORS = ("", "", " ", "-", ".", "/", " - ", "\u2013", "\u00a0", "(", ")", "  ", "x")
_LEADS = ("", "", "", "+", "\uff0b", "(", "00", "011", "0", "1", "+1 ", "+44 ", "(+49) ")
_TAILS = ("", "", "", " x12", " ext. 7", "#", "#12", ";ext=3", "x", "abc", "%", "$", "5", "x1080", "ab", "\u00e9", "\u00b2")


def _example_digits(rng: random.Random) -> str:
    region = rng.choice(_PROPERTY_REGIONS)
    number = phonenumbers.example_number_for_type(region, rng.choice(_NUMBER_TYPES))
    if number is None:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))
    fmt = rng.choice(
        (phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.E164)
    )
    digits = "".join(c for c in phonenumbers.format_number(number, fmt) if c.isdigit())
    cut = rng.randint(0, 3)  # drop a few digits: near-valid lengths
    return digits[: len(digits) - cut] if cut and rng.random() < 0.5 else digits


def _phone_like(rng: random.Random) -> str:
    """A phone-like string: real or random digits, separators, prefixes, extensions."""
    if rng.random() < 0.6:
        digits = _example_digits(rng)
    else:
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 11)))
    if rng.random() < 0.1:  # full-width or Arabic-Indic digits
        base = rng.choice((0xFF10, 0x0660, 0x06F0))
        digits = "".join(chr(base + int(d)) for d in digits)
    out = [rng.choice(_LEADS)]
    for d in digits:
        if rng.random() < 0.25:
            out.append(rng.choice(_SEPARATORS))
        out.append(d)
    out.append(rng.choice(_TAILS))
    return "".join(out)


def test_phone_gate_only_rules_out_candidates_that_are_never_valid() -> None:
    """Whatever the gate rules out, libphonenumber parses to no valid number (randomised)."""
    from detectors.pii import _PhoneGate

    rng = random.Random(20241124)
    gate = _PhoneGate(_PROPERTY_REGIONS)
    ruled_out = 0
    for _ in range(4000):
        candidate = _phone_like(rng)
        number = gate.number(candidate)
        for region in _PROPERTY_REGIONS:
            if not gate.hopeless(number, region):
                continue
            ruled_out += 1
            try:
                parsed = phonenumbers.parse(candidate, region, keep_raw_input=True)
            except phonenumbers.NumberParseException:
                continue
            assert not phonenumbers.is_valid_number(parsed), (candidate, region)
    assert ruled_out > 2000  # the gate is exercised, not vacuous


def _phone_text(rng: random.Random) -> str:
    """Phone-like strings between words, punctuation, digits and line breaks."""
    glue = (" ", " ", ", ", "\n", " call ", "tel:", "abc", "7", " (", ") ", "/", " - ", "%")
    parts = []
    for _ in range(rng.randint(1, 6)):
        parts.append(rng.choice(glue))
        parts.append(_phone_like(rng))
    parts.append(rng.choice(glue))
    return "".join(parts)


@pytest.mark.parametrize(
    ("regions", "leniency"),
    [
        (PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS, 1),
        (_PROPERTY_REGIONS[8:], 1),
        (PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS, 0),  # "possible" numbers: no gate
        (PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS, 2),
    ],
)
def test_phone_fast_path_equals_presidio_phone_recognizer(
    regions: tuple[str, ...], leniency: int
) -> None:
    """``_phone_analyze`` returns what ``PhoneRecognizer.analyze`` does (randomised texts), also with
    libphonenumber verdicts remembered from earlier texts."""
    from detectors.pii import _phone_analyze, _PhoneGate

    rec = PhoneRecognizer(supported_regions=regions, leniency=leniency)
    gate = _PhoneGate(regions, verdicts_max=64)  # verdicts shared across the texts, with evictions
    rng = random.Random(7)
    found = 0
    for _ in range(600):
        text = _phone_text(rng)
        ours = _phone_analyze(rec, text, ["PHONE_NUMBER"], None, gate)
        theirs = rec.analyze(text, ["PHONE_NUMBER"], None)

        def key(results: list) -> list:
            return sorted(
                (
                    r.start,
                    r.end,
                    r.score,
                    r.analysis_explanation.textual_explanation,
                    str(r.recognition_metadata),
                )
                for r in results
            )

        assert key(ours) == key(theirs), text
        found += len(theirs)
    assert found > 100  # valid numbers were generated, so the match path is covered


def test_detector_equals_presidio_on_random_phone_texts(engine) -> None:
    rng = random.Random(11)
    texts = [_phone_text(rng) for _ in range(150)]
    _assert_equal_to_presidio(PiiDetector(score_threshold=0.0), engine, texts)


def test_non_ascii_digit_anchor_matches_exactly_pythons_non_ascii_digits() -> None:
    """The Hyperscan class replacing a regex search holds every non-ASCII ``\\d``, nothing else."""
    import re

    from detectors import _hs
    from detectors.pii import _non_ascii_digit_class

    db = _hs.compile_block([_non_ascii_digit_class()], [_hs.UTF8])
    python = re.compile(r"(?![0-9])\d")
    chars = [chr(i) for i in range(sys.maxunicode + 1) if not 0xD800 <= i <= 0xDFFF]
    end_of: dict[int, str] = {}  # byte offset just past each character -> the character
    pos = 0
    for c in chars:
        pos += len(c.encode("utf-8"))
        end_of[pos] = c
        pos += 1  # the "\n" between characters
    data = "\n".join(chars).encode("utf-8")
    found = {end_of[end] for _, _, end in _hs.scan_matches(db, data)}
    assert found == {c for c in chars if python.match(c)}
    assert "\u0660" in found and "\uff10" in found and "7" not in found


def test_phone_gate_bounds_only_candidates_whose_every_digit_is_a_decimal_digit() -> None:
    """Plus signs, digit-valued non-decimals and vanity letters leave a candidate unbounded.

    libphonenumber reads letters as keypad digits (after upper-casing them) only when the
    number holds three ASCII letters or more; below that it keeps just the characters that
    have a digit value. So a bounded candidate may hold letters, never a plus sign or a
    digit-valued character that is no decimal digit, and never three ASCII letters.
    """
    import unicodedata

    from detectors.pii import _PhoneGate

    util = phonenumbers.phonenumberutil
    gate = _PhoneGate(("US",))
    for i in range(sys.maxunicode + 1):
        c = chr(i)
        if c.isdecimal():
            continue
        if gate.number(f"555{c}1234") is not None:
            assert c not in util._PLUS_CHARS and unicodedata.digit(c, -1) == -1, hex(i)
    letters = "".join(chr(i) for i in range(128) if chr(i).isalpha())
    for a in letters:
        assert gate.number(f"555 {a}{a} 1234") == "5551234"
        assert gate.number(f"555 {a}{a}{a} 1234") is None
        # The vanity reading needs exactly that: three ASCII letters, whatever else is there.
        assert util.fullmatch(util._VALID_ALPHA_PHONE_PATTERN, f"555 {a}{a}{a} 1234")
        assert not util.fullmatch(util._VALID_ALPHA_PHONE_PATTERN, f"555 {a}{a}\u0131\u00e9 1234")
        assert util._normalize(f"555 {a}{a}\u0131\u00e9 1234") == "5551234"


# --- result cache: a conversation's earlier turns are not analysed again ----------------------------------


def test_a_repeated_text_is_answered_from_the_cache_with_a_fresh_list(monkeypatch: pytest.MonkeyPatch) -> None:
    detector = PiiDetector(cache_size=2)
    runs: list[str] = []
    real = detector.scan_results
    monkeypatch.setattr(detector, "scan_results", lambda text: (runs.append(text), real(text))[1])
    text = "write to jane.doe@example.com today"
    first = detector.scan(text)
    first.clear()  # a caller's list is its own
    again = detector.scan(text)
    assert again == PiiDetector(cache_size=0).scan(text)
    assert ("EMAIL_ADDRESS", 9, 29) in [(f.entity_type, f.start, f.end) for f in again]
    assert runs == [text]


def test_the_cache_keeps_only_the_most_recent_texts_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for size, expected_runs in ((2, 4), (0, 6)):
        detector = PiiDetector(cache_size=size)
        runs: list[str] = []
        real = detector.scan_results
        monkeypatch.setattr(detector, "scan_results", lambda text, runs=runs, real=real: (runs.append(text), real(text))[1])
        for text in ("a@example.com", "b@example.com", "a@example.com", "c@example.com", "b@example.com", "c@example.com"):
            detector.scan(text)
        # size 2: "a" is remembered once, "b" was evicted by "c" before it came back, "c" is remembered
        assert len(runs) == expected_runs


def test_long_texts_are_not_remembered() -> None:
    detector = PiiDetector(cache_size=8)
    long_text = "mail a@example.com " + "x" * 20_000
    assert "EMAIL_ADDRESS" in {f.entity_type for f in detector.scan(long_text)}
    assert long_text not in detector._cache
    with pytest.raises(ValueError):
        PiiDetector(cache_size=-1)


def test_phone_verdicts_are_shared_across_texts_unless_caching_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A size or date met in one message is not parsed again by libphonenumber in the next one."""
    from detectors import pii

    parses: list[str] = []
    real = pii._PhoneMatcher.verify_uncached

    def counted(self, candidate: str, offset: int):
        parses.append(candidate)
        return real(self, candidate, offset)

    monkeypatch.setattr(pii._PhoneMatcher, "verify_uncached", counted)
    texts = ("render it at 1080x1080 pixels", "a square 1080x1080 image")
    for size, shared in ((8, True), (0, False)):
        detector = PiiDetector(cache_size=size)
        parses.clear()
        first = [detector.scan(t) for t in texts]
        once = len([c for c in parses if c == "1080x1080"])
        assert once > 0
        parses.clear()
        detector.scan("the 1080x1080 version")  # another text, the same candidate between spaces
        assert bool(parses) is not shared
        assert first == [PiiDetector(cache_size=0).scan(t) for t in texts]
