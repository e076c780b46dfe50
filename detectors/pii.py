"""PII detection: Presidio's pattern recognizers behind a Hyperscan prefilter.

Presidio's predefined recognizers, run with its NoOp NLP engine (no spaCy model),
are the source of truth: :meth:`PiiDetector.scan` returns exactly what
``AnalyzerEngine(nlp_engine=NoOp).analyze`` returns for the same entities and
threshold. Running every recognizer over every prompt costs milliseconds per KB,
so one Hyperscan database of cheap *superset* anchors (``@`` for e-mail, three
digits for the numeric family, five digits -- or one of the few valid four-digit
numbers -- for phones, ``[a-z]{2}\\d{2}`` for IBAN, Presidio's own TLD list for
URLs, ...) finds candidate positions first. Every match of a recognizer contains an
anchor of one of its families, and each anchor opens a window with safe edges:

* whitespace-free families (e-mail, URL, crypto, MAC/UUID): the token around
  the anchor;
* numeric and phone families: the anchor's line (no pattern of theirs, nor
  libphonenumber's candidate pattern, matches a line break), cut further at safe
  boundaries on long lines;
* otherwise: widened by the family's reach and snapped outwards to a *safe boundary*,
  a whitespace run between two words holding letters and no digit (no pattern that
  crosses whitespace -- card, phone, SSN, ITIN, NHS -- has such words inside; IBAN's
  letter-only groups are covered by its forward reach).

The numeric family's anchor (any three digits) fires on most prompts, so a pattern
recognizer of that family runs only when one of its own regexes that can reach the
threshold matches inside the family's windows: they are compiled into a second
database in Hyperscan's prefilter mode (a superset of each regex's matches), scanned
over those windows only; where none fires, Presidio's full analysis would return
nothing from that recognizer either. (The other families' anchors are already about
as selective as their recognizers' regexes.)

A recognizer then analyses its windows in one call, joined by line breaks; results
are shifted back, and the engine's score filter and ``remove_duplicates`` run over
the whole list. Recognizers that can never reach the threshold are skipped, as the
engine's filter would drop all their results.

Presidio's phone recognizer runs libphonenumber's matcher over the text once per region
(eight by default), parsing each digit group in each. :func:`_phone_analyze` uses the
same matcher and changes only how its per-candidate verdict is reached: the walk over
candidates, which does not depend on the region, is made once; a candidate whose digits
provably make no valid number in a region (:class:`_PhoneGate`: too few for the
region's country code, or four that are not one of its short numbers) is answered
without a parse; other verdicts are kept for the call. A region's matcher runs in full
only when one of the walked candidates is valid there. Results, explanations included,
are Presidio's.

With no spaCy model installed the NER tier (PERSON, LOCATION, ORGANIZATION, NRP) is
unavailable; ``ner=True`` enables it only when an ``en_core_web_*`` model is.
"""

from __future__ import annotations

import os

# tldextract (used by Presidio's e-mail validation) must never fetch the public
# suffix list: an empty URL list makes it use the snapshot bundled in the wheel.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import bisect
import functools
import logging
import re
import sys
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import hyperscan
import phonenumbers
import phonenumbers.phonenumbermatcher
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from . import _hs
from ._lru import TextLRU

__all__ = [
    "DEFAULT_ENTITIES",
    "DEFAULT_SCORE_THRESHOLD",
    "PATTERN_ENTITIES",
    "PiiDetector",
    "PiiFinding",
    "presidio_engine",
]

logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

#: Every entity Presidio detects without NER.
PATTERN_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "URL",
    "CRYPTO",
    "MAC_ADDRESS",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_PASSPORT",
    "US_ITIN",
    "UK_NHS",
    "DATE_TIME",
    "MEDICAL_LICENSE",
    "UUID",
)
#: Entities scanned when the caller names none.
DEFAULT_ENTITIES: tuple[str, ...] = tuple(
    e for e in PATTERN_ENTITIES if e not in ("UUID", "MEDICAL_LICENSE")
)
NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION", "ORGANIZATION", "NRP")
#: Presidio's pattern scores before context: 0.4 keeps phone numbers (0.4), dates,
#: IPs, URLs, e-mails and every checksum-validated match, drops the "weak" guesses.
DEFAULT_SCORE_THRESHOLD = 0.4

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
# Separators allowed between digits: anything but a letter or digit ("x" stays: phone
# extensions), at most four (libphonenumber's own punctuation limit).
_SEP = "[^0-9a-wyz]{0,4}"
# libphonenumber's own separator class between digit blocks of a candidate (at most four
# of them); a comma or a newline never sits inside a phone number's digits.
_PHONE_SEP: str = getattr(phonenumbers.phonenumbermatcher, "_PUNCTUATION", _SEP)
_PHONE_PATTERN = getattr(
    getattr(phonenumbers.phonenumbermatcher, "_PATTERN", None), "pattern", "\\s"
)
# "." only occurs inside character classes of that pattern, so no "\n" can be matched.
_PHONE_ONE_LINE = not any(t in _PHONE_PATTERN for t in ("\n", "\r", "\\s", "\\n"))


@dataclass(frozen=True, slots=True)
class _Family:
    """Anchor patterns (caseless) and how far a match may reach around an anchor's end."""

    patterns: tuple[str, ...]
    # Longest anchor: a match starts at most this far before the anchor's end.
    back: int
    # How far a match may continue past the anchor's end across safe boundaries.
    forward: int = 0
    # The family's recognizers never match whitespace (and look at most one character
    # around a match), so the whitespace-delimited token around an anchor is a safe window.
    in_token: bool = False
    # No match of the family's recognizers contains a line break (their patterns use a
    # literal space, never \s; libphonenumber's candidate pattern has no "\n"), so a
    # match lies on its anchor's line and the line, with its "\n"s, is a safe window.
    one_line: bool = False


# Every match of a recognizer contains a match of one of its families' anchors.
_FAMILIES: dict[str, _Family] = {
    "email": _Family((r"@",), 1, in_token=True),
    "url": _Family((r"\.[a-z]{2}",), 3, in_token=True),
    "digits": _Family(
        (rf"\d{_SEP}\d{_SEP}\d", rf"(?:{_MONTHS})-\d", rf"\d-(?:{_MONTHS})"),
        11,
        one_line=True,
    ),
    # Phone: five digits, or one of the few valid four-digit numbers (added per detector,
    # see _short_phone_numbers); "phone4" (any four digits) stands in for non-ASCII text,
    # whose digits (Arabic-Indic, full-width, ...) libphonenumber also reads.
    "phone": _Family(
        (rf"\d{_PHONE_SEP}\d{_PHONE_SEP}\d{_PHONE_SEP}\d{_PHONE_SEP}\d",),
        21,
        one_line=_PHONE_ONE_LINE,
    ),
    "phone4": _Family(
        (rf"\d{_PHONE_SEP}\d{_PHONE_SEP}\d{_PHONE_SEP}\d",),
        16,
        one_line=_PHONE_ONE_LINE,
    ),
    "alnum": _Family((r"[a-z]\d", r"\d[a-z]"), 2),
    # IBAN groups after the first may be letters only, so the match can run on past
    # digit-free tokens: at most 34 characters plus 8 separators.
    "iban": _Family((r"[a-z]{2}\d{2}",), 4, 48),
    "crypto": _Family((r"(?:bc1|[13])[a-z0-9]{25}",), 28, in_token=True),
    "hexsep": _Family(
        (
            r"[0-9a-f]{2}[:\-][0-9a-f]{2}[:\-]",
            r"[0-9a-f]{4}\.[0-9a-f]{4}",
            r"[0-9a-f]{8}-[0-9a-f]{4}",
        ),
        13,
        in_token=True,
    ),
    "ipv6": _Family((r"::", r"[0-9a-f]:[0-9a-f]{1,4}:"), 7),
}
_NON_ASCII_ONLY = {"phone4": "phone"}


@functools.cache
def _non_ascii_digit_class() -> str:
    """A Hyperscan (UTF-8) class of every decimal digit other than 0-9, as Python's ``\\d``
    reads them: reported by the anchor scan itself, the text need not be searched again."""
    ranges: list[list[int]] = []
    for i in range(0x80, sys.maxunicode + 1):
        if chr(i).isdecimal():  # Unicode category Nd, which is what ``\d`` matches
            if ranges and ranges[-1][1] == i - 1:
                ranges[-1][1] = i
            else:
                ranges.append([i, i])
    return "[" + "".join(f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in ranges) + "]"
_ENTITY_FAMILIES: dict[str, tuple[str, ...]] = {
    "EMAIL_ADDRESS": ("email",),
    "URL": ("url",),
    "CRYPTO": ("crypto",),
    "MAC_ADDRESS": ("hexsep",),
    "UUID": ("hexsep",),
    "IP_ADDRESS": ("digits", "ipv6"),
    "IBAN_CODE": ("iban",),
    "US_DRIVER_LICENSE": ("digits", "alnum"),
    "US_PASSPORT": ("digits", "alnum"),
    "MEDICAL_LICENSE": ("digits",),
    "PHONE_NUMBER": ("phone", "phone4"),
}
_DIGIT_FAMILY = ("digits",)

# A safe boundary: a whitespace run (group 1) between two tokens that hold a letter and no digit.
_BOUNDARY = re.compile(r"(?<!\S)(?=\S*[^\W\d_])[^\s\d]+(\s+)(?=[^\s\d]*[^\W\d_])")
_TOKEN = re.compile(r"\S+")
_LAST_SPACE = re.compile(r"\s\S*\Z")
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[^\W\d_]")
_SNAP_CHUNK = 512
_LONG_LINE = 200


_WARM_UP = (
    "mail a.b@example.com or call +1 212-555-0100, 020 7946 0958, 030 1234567, 01 23 45 67 89; "
    "https://example.org 4111 1111 1111 1111 GB82 WEST 1234 5698 7654 32 078-05-1120 10.0.0.1 fe80::1 "
    "2024-01-31 00:1a:2b:3c:4d:5e 1BoatSLRHtKNngkdXEeobR76b53LETtpyT"
)


@dataclass(frozen=True, slots=True)
class PiiFinding:
    """One detected entity: ``text[start:end]`` (character offsets, end exclusive)."""

    entity_type: str
    start: int
    end: int
    score: float


def presidio_engine() -> AnalyzerEngine:
    """Plain Presidio ``AnalyzerEngine`` on the NoOp NLP engine (the reference we must equal)."""
    return AnalyzerEngine(
        nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "noop"}])
    )


@functools.cache
def _shared_engine() -> AnalyzerEngine:
    """One engine per process: its recognizers are stateless after loading and are shared."""
    return presidio_engine()


def _max_score(recognizer: EntityRecognizer) -> float:
    """Highest score a recognizer can give without context words."""
    if not isinstance(recognizer, PatternRecognizer):
        return 1.0
    if type(recognizer).validate_result is not PatternRecognizer.validate_result:
        return 1.0  # a checksum may lift a weak pattern to the maximum score
    patterns: list[Pattern] = getattr(recognizer, "patterns", [])
    return max((p.score for p in patterns), default=0.0)


# Presidio compiles patterns with DOTALL | MULTILINE | IGNORECASE (a recognizer may use
# fewer flags): matching with all of them, in prefilter mode, is a superset either way.
_GATE_FLAGS = (
    hyperscan.HS_FLAG_PREFILTER
    | hyperscan.HS_FLAG_SINGLEMATCH
    | hyperscan.HS_FLAG_MULTILINE
    | _hs.CASELESS
    | _hs.DOTALL
    | _hs.UTF8
)


def _gate_patterns(recognizer: EntityRecognizer, threshold: float) -> tuple[str, ...]:
    """Regexes of which one must match for ``recognizer`` to return a result at ``threshold``.

    Empty when the recognizer is not a plain :class:`PatternRecognizer` (its own
    ``analyze`` may do anything): it is then never gated. A pattern whose score is below
    the threshold cannot contribute unless a checksum may lift it.
    """
    if (
        not isinstance(recognizer, PatternRecognizer)
        or type(recognizer).analyze is not PatternRecognizer.analyze
    ):
        return ()
    lifts = type(recognizer).validate_result is not PatternRecognizer.validate_result
    patterns: list[Pattern] = getattr(recognizer, "patterns", [])
    return tuple(p.regex for p in patterns if lifts or p.score >= threshold)


def _prefilter_compiles(pattern: str) -> bool:
    try:
        _hs.compile_block([pattern], [_GATE_FLAGS])
    except hyperscan.error:
        return False
    return True


def _right_token_ok(text: str, ws_end: int) -> bool:
    """The token after a boundary whitespace run, read in the full text, holds no digit."""
    m = _TOKEN.match(text, ws_end)
    return (
        m is not None
        and _DIGIT.search(m.group()) is None
        and _LETTER.search(m.group()) is not None
    )


def _token_left(text: str, pos: int) -> int:
    """Index of the whitespace character before the token holding ``pos`` (0 if none)."""
    hi = pos
    while hi > 0:
        lo = max(0, hi - _SNAP_CHUNK)
        m = _LAST_SPACE.search(text, lo, hi)
        if m is not None:
            return m.start()
        hi = lo
    return 0


def _token_right(text: str, pos: int) -> int:
    """Index just past the whitespace character after the token holding ``pos - 1``."""
    m = _TOKEN.match(text, pos)
    end = m.end() if m is not None else pos
    return min(len(text), end + 1)


def _snap_left(text: str, pos: int) -> int:
    """Start of the last safe boundary whose whitespace ends at or before ``pos`` (0 if none)."""
    hi, span = pos, 64
    while True:
        lo = max(0, hi - span)
        last = -1
        for m in _BOUNDARY.finditer(
            text, lo, hi
        ):  # look-behind sees text before ``lo``
            if _right_token_ok(text, m.end(1)):
                last = m.start(1)
        if last >= 0:
            return last
        if lo == 0:
            return 0
        if span < _SNAP_CHUNK:
            span *= 2  # widen first: most boundaries are close
        else:
            hi = (
                lo + 64
            )  # then slide left, overlapping so a token pair cut at ``lo`` is seen whole


def _snap_right(text: str, pos: int) -> int:
    """End of the first safe boundary starting at or after ``pos`` (``len(text)`` if none)."""
    n = len(text)
    lo = pos
    while lo < n:
        hi = min(n, lo + _SNAP_CHUNK)
        for m in _BOUNDARY.finditer(text, lo, hi):
            if _right_token_ok(text, m.end(1)):
                return m.end(1)
        if hi == n:
            break
        lo = max(
            lo + 1, hi - 64
        )  # re-scan a little: a boundary cut by ``hi`` is not lost
    return n


def _min_length(metadata: phonenumbers.PhoneMetadata | None) -> int:
    """Fewest digits of a valid national number under ``metadata`` (0 when not listed)."""
    desc = metadata.general_desc if metadata is not None else None
    lengths = desc.possible_length if desc is not None else None
    return min(lengths) if lengths else 0


def _country_min_length(metadata: phonenumbers.PhoneMetadata) -> int:
    """Fewest digits of a valid number of any region sharing ``metadata``'s country code
    (validity is judged for the region of the code whose patterns the number fits)."""
    return min(
        (
            _min_length(phonenumbers.PhoneMetadata.metadata_for_region(r))
            for r in phonenumbers.region_codes_for_country_code(metadata.country_code)
        ),
        default=0,
    )


@functools.cache
def _short_phone_numbers(regions: tuple[str, ...]) -> tuple[str, ...]:
    """Every four-digit string libphonenumber accepts as a valid number in ``regions``.

    Fewer digits are never valid; with a ``+`` at least six are needed. Only regions
    whose country code allows a length of four or less are enumerated (a few tenths of
    a second, once per process).
    """
    found: set[str] = set()
    for region in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None or _country_min_length(metadata) > 4:
            continue
        for i in range(10_000):
            digits = f"{i:04d}"
            try:
                number = phonenumbers.parse(digits, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                found.add(digits)
    return tuple(sorted(found))


#: A plus sign leaves a candidate's digits unbounded (a country code follows).
_PHONE_PLUS = re.compile(
    "[" + re.escape(getattr(phonenumbers.phonenumberutil, "_PLUS_CHARS", "+\uff0b")) + "]"
)
#: Letters and digit-valued characters that are no decimal digit (a superscript).
_PHONE_NON_DECIMAL = re.compile(r"[^\W\d_]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
#: libphonenumber reads A-Z as keypad digits only when a number holds three or more of them
#: (``_VALID_ALPHA_PHONE_PATTERN``, a vanity number); fewer are stripped like punctuation.
_VANITY_LETTERS = 3
_DECIMAL = re.compile(r"\d")
# A national-prefix transform rule made only of group references keeps a substring.
_GROUPS_ONLY = re.compile(r"(?:[\\$]\d)*")


# (candidate, default region, leniency, character before, character after): what a verdict depends on.
_VerdictKey = tuple[str, str, int, str, str]
_VERDICTS_MAX = 4096


class _PhoneGate:
    """Phone candidates that provably parse to no valid number, per default region.

    Applies only to a candidate without plus sign, without digit-valued characters that
    are no decimal digit, and with fewer than three ASCII letters (fewer are stripped, not
    read as keypad digits: "1080x1080" is a number with an extension at most), whose
    decimal digits do not start with the region's international prefix, in a region
    whose national-prefix rule (if any) only removes or reorders digits. libphonenumber then keeps the region's
    country code (stripping it, if written in front) and takes the national number from
    the candidate's digits, at most as many as the candidate has:

    * fewer digits than the shortest valid number of any region of that country code
      can never be valid;
    * when that shortest length is four and the candidate has four digits, the number is
      those four digits parsed in the region exactly as :func:`_short_phone_numbers`
      parsed them (dropping any would leave too few): valid only if listed there.
    """

    def __init__(self, regions: Sequence[str], verdicts_max: int = 0) -> None:
        self.short = frozenset(_short_phone_numbers(tuple(regions)))
        # libphonenumber's verdicts, shared by the calls of one recognizer (see :class:`_PhoneCall`):
        # dates, sizes and ids recur across messages. None: each call keeps its own only.
        self.verdicts: OrderedDict[_VerdictKey, phonenumbers.PhoneNumber | None] | None = (
            OrderedDict() if verdicts_max > 0 else None
        )
        self.verdicts_max = verdicts_max
        # region -> (fewest digits valid under its country code, its international prefix)
        self.regional: dict[str, tuple[int, re.Pattern[str] | None]] = {}
        for region in regions:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if meta is None:
                continue
            rule = meta.national_prefix_transform_rule
            if rule and not _GROUPS_ONLY.fullmatch(rule):
                continue
            idd = meta.international_prefix
            self.regional[region] = (
                _country_min_length(meta),
                re.compile(idd) if idd else None,
            )

    def number(self, candidate: str) -> str | None:
        """The candidate's decimal digits (as ASCII), or ``None`` when the gate does not apply."""
        if _PHONE_PLUS.search(candidate) is not None:
            return None
        others = _PHONE_NON_DECIMAL.findall(candidate)
        if others and (
            len(_ASCII_LETTER.findall(candidate)) >= _VANITY_LETTERS
            or any(unicodedata.digit(c, None) is not None for c in others)
        ):
            return None
        digits = "".join(_DECIMAL.findall(candidate))
        return (
            digits
            if digits.isascii()
            else "".join(str(unicodedata.digit(c)) for c in digits)
        )

    def hopeless(self, number: str | None, region: str) -> bool:
        """True when a candidate with these digits (see :meth:`number`) parses to no valid
        number with ``region`` as the default region."""
        regional = self.regional.get(region)
        if regional is None or number is None:
            return False
        fewest, idd = regional
        n = len(number)
        if n >= fewest and not n == 4 == fewest:
            return False
        # Any prefix of the digits: libphonenumber may cut the number's end off first.
        if idd is not None and any(idd.match(number, 0, k) for k in range(n + 1)):
            return False
        return n < fewest or number not in self.short


class _PhoneCall:
    """One phone recognizer call: libphonenumber's per-candidate verdicts, remembered (across
    calls, in the gate's bounded ``verdicts``).

    The verdict of ``PhoneNumberMatcher._parse_and_verify`` depends on the candidate, the
    default region, the leniency and the characters just before and after the candidate,
    nothing else; candidates the :class:`_PhoneGate` rules out are answered without a
    parse when the leniency asks for valid numbers (below that, a possible number is
    enough, and the gate's reasoning does not hold).
    """

    def __init__(self, gate: _PhoneGate, leniency: int) -> None:
        self.gate = gate
        self._gated = leniency >= phonenumbers.Leniency.VALID
        self._leniency = leniency
        self._numbers: dict[str, str | None] = {}
        # The gate's shared, bounded verdicts, or this call's own.
        shared = gate.verdicts
        self._verdicts: OrderedDict[_VerdictKey, phonenumbers.PhoneNumber | None] = (
            OrderedDict() if shared is None else shared
        )
        self._verdicts_max = sys.maxsize if shared is None else gate.verdicts_max

    def parse_and_verify(
        self, matcher: _PhoneMatcher, candidate: str, offset: int
    ) -> phonenumbers.PhoneNumberMatch | None:
        """What ``matcher``'s own ``_parse_and_verify`` returns for ``candidate``."""
        region: str = matcher.preferred_region
        if candidate in self._numbers:
            number = self._numbers[candidate]
        else:
            number = self._numbers[candidate] = self.gate.number(candidate)
        if self._gated and self.gate.hopeless(number, region):
            return None
        text: str = matcher.text
        end = offset + len(candidate)
        key = (
            candidate,
            region,
            self._leniency,
            text[offset - 1] if offset > 0 else "",
            text[end] if end < len(text) else "",
        )
        verdicts = self._verdicts
        if key in verdicts:
            verdicts.move_to_end(key)
            parsed = verdicts[key]
            return (
                None
                if parsed is None
                else phonenumbers.PhoneNumberMatch(offset, candidate, parsed)
            )
        found = matcher.verify_uncached(candidate, offset)
        verdicts[key] = None if found is None else found.number
        if len(verdicts) > self._verdicts_max:
            verdicts.popitem(last=False)
        return found


class _PhoneMatcher(phonenumbers.PhoneNumberMatcher):  # type: ignore[misc]
    """libphonenumber's matcher, its per-candidate verdicts going through a :class:`_PhoneCall`.

    With ``trace`` set, every verdict is "no number" and the candidates asked about are
    appended to ``trace``: that walk does not depend on the region (``_parse_and_verify``
    is the matcher's only step that reads the region or the leniency), so it is the
    walk every region's matcher makes until its first match.
    """

    def __init__(
        self,
        text: str,
        region: str,
        leniency: int,
        call: _PhoneCall,
        trace: list[tuple[str, int]] | None = None,
    ) -> None:
        super().__init__(text, region, leniency=leniency)
        self._call = call
        self._trace = trace

    def _parse_and_verify(
        self, candidate: str, offset: int
    ) -> phonenumbers.PhoneNumberMatch | None:
        if self._trace is not None:
            self._trace.append((candidate, offset))
            return None
        return self._call.parse_and_verify(self, candidate, offset)

    def verify_uncached(
        self, candidate: str, offset: int
    ) -> phonenumbers.PhoneNumberMatch | None:
        """libphonenumber's own ``_parse_and_verify``."""
        return super()._parse_and_verify(candidate, offset)


def _fast_phone_ok(recognizer: EntityRecognizer) -> bool:
    """The recognizer is Presidio's own PhoneRecognizer and the matcher has the hook we use."""
    return (
        isinstance(recognizer, PhoneRecognizer)
        and type(recognizer).analyze is PhoneRecognizer.analyze
        and callable(
            getattr(phonenumbers.PhoneNumberMatcher, "_parse_and_verify", None)
        )
        and callable(getattr(recognizer, "_get_recognizer_result", None))
    )


def _phone_analyze(
    recognizer: PhoneRecognizer,
    text: str,
    entities: list[str],
    nlp_artifacts: NlpArtifacts | None,
    gate: _PhoneGate,
) -> list[RecognizerResult]:
    """``PhoneRecognizer.analyze`` (which ignores ``entities`` too), on :class:`_PhoneMatcher`s.

    Presidio runs libphonenumber's matcher over the text once per region. Here the
    candidates are walked once (see :class:`_PhoneMatcher`); a region's matcher runs only
    when one of those candidates is a valid number there, and a region where none is
    yields nothing, as its own walk would. The rest is Presidio's code, statement for
    statement.
    """
    leniency = recognizer.leniency
    call = _PhoneCall(gate, leniency)
    trace: list[tuple[str, int]] = []
    for _ in _PhoneMatcher(text, "", leniency, call, trace):
        pass
    results: list[RecognizerResult] = []
    for region in recognizer.supported_regions:
        matcher = _PhoneMatcher(text, region, leniency, call)
        if all(matcher._parse_and_verify(c, o) is None for c, o in trace):
            continue
        for match in matcher:
            try:
                parsed_number = phonenumbers.parse(text[match.start : match.end])
                # As Presidio does: the loop variable is rebound, and an unparsable later
                # match is explained with this region.
                region = phonenumbers.region_code_for_number(parsed_number)
                results += [
                    recognizer._get_recognizer_result(
                        match, text, region, nlp_artifacts
                    )
                ]
            except phonenumbers.NumberParseException:
                results += [
                    recognizer._get_recognizer_result(
                        match, text, region, nlp_artifacts
                    )
                ]
    return EntityRecognizer.remove_duplicates(results)


def _url_family(recognizer: EntityRecognizer) -> _Family | None:
    """Anchor on Presidio's own top-level-domain list: ``[.](?:(?:com)|...)`` from its URL pattern."""
    for pattern in getattr(recognizer, "patterns", ()):
        regex = pattern.regex
        at = regex.find("[.](?:")
        if at < 0:
            continue
        depth, i = 0, at + 3
        while i < len(regex):
            c = regex[i]
            if c == "\\":
                i += 2
                continue
            depth += c == "("
            depth -= c == ")"
            i += 1
            if depth == 0:
                group = regex[at:i]
                # The anchor is one host character, the dot and a domain from the list: a window
                # reaching back that far from the anchor's end holds the anchor's whole token.
                inner = group[len("[.](?:"):-1]
                names = _URL_TLD_ALTERNATIVE.findall(inner)
                plain = names and "|".join(f"(?:{n})" for n in names) == inner
                back = 2 + max(map(len, names)) if plain else _URL_BACK_FALLBACK
                return _Family((r"[a-z0-9.\-]" + group,), back, in_token=True)
    return None


_URL_TLD_ALTERNATIVE = re.compile(r"\(\?:([a-z0-9\-]+)\)")
# Domain alternatives that are not plain names (a changed Presidio pattern): a generous reach.
_URL_BACK_FALLBACK = 80


def _to_char_offsets(
    data: bytes, ends: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """``(pid, byte end)`` pairs as ``(pid, character end)``: UTF-8 mode puts every end on a
    code-point boundary, so decoding the bytes between consecutive ends counts the characters."""
    char_of: dict[int, int] = {}
    pos = chars = 0
    for end in sorted({e for _, e in ends}):
        chars += len(data[pos:end].decode("utf-8"))
        pos = end
        char_of[end] = chars
    return [(pid, char_of[e]) for pid, e in ends]


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


#: Remembered texts: at most 16 Ki characters each and 4 Mi characters together (see ``_lru``).
_CACHE_MAX_CHARS = 1 << 14
_CACHE_TOTAL_CHARS = 1 << 22


class PiiDetector:
    """Presidio-equivalent PII scanner; build once, call :meth:`scan` per text.

    Chat clients resend the whole conversation every turn, so :meth:`scan` remembers the
    findings of the last ``cache_size`` texts (up to 16 Ki characters each, 4 Mi in all; 0
    turns it off). Findings depend on the text and this detector's configuration only. Share one
    detector within one thread (the proxy's event loop), as the cache is not locked.
    """

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        *,
        ner: bool = False,
        cache_size: int = 1024,
    ) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self._cache: TextLRU[tuple[PiiFinding, ...]] = TextLRU(
            cache_size, _CACHE_TOTAL_CHARS, _CACHE_MAX_CHARS
        )
        self.entities: tuple[str, ...] = (
            tuple(entities) if entities is not None else DEFAULT_ENTITIES
        )
        self.score_threshold = float(score_threshold)
        unknown = [
            e
            for e in self.entities
            if e not in PATTERN_ENTITIES and not (ner and e in NER_ENTITIES)
        ]
        if unknown:
            raise ValueError(f"unsupported PII entities: {unknown}")
        engine = _shared_engine()
        self._empty: NlpArtifacts = engine.nlp_engine.process_text("", "en")
        pattern_entities = [e for e in self.entities if e in PATTERN_ENTITIES]
        recognizers = (
            engine.registry.get_recognizers(language="en", entities=pattern_entities)
            if pattern_entities
            else []
        )
        # (recognizer, its requested entities, its family names); recognizers that can never
        # reach the threshold are dropped, exactly as the engine's score filter would drop them.
        self._recognizers: list[
            tuple[EntityRecognizer, list[str], tuple[str, ...]]
        ] = []
        for rec in recognizers:
            if not rec.is_loaded:
                rec.load()
                rec.is_loaded = True
            if _max_score(rec) < self.score_threshold:
                continue
            ents = [e for e in rec.supported_entities if e in pattern_entities]
            fams = tuple(
                sorted(
                    {f for e in ents for f in _ENTITY_FAMILIES.get(e, _DIGIT_FAMILY)}
                )
            )
            self._recognizers.append((rec, ents, fams))
        # id(recognizer) -> its regions' gate, for Presidio's phone recognizer, analysed by
        # :func:`_phone_analyze` (same results) instead of its own ``analyze``.
        self._fast_phone: dict[int, _PhoneGate] = {
            id(rec): _PhoneGate(tuple(rec.supported_regions), _VERDICTS_MAX if cache_size else 0)
            for rec, _, _ in self._recognizers
            if _fast_phone_ok(rec)
        }
        self._families: dict[str, _Family] = dict(_FAMILIES)
        for rec, _, _ in self._recognizers:
            if "URL" in rec.supported_entities:
                url = _url_family(rec)
                if url is not None:
                    self._families["url"] = url
            regions = getattr(rec, "supported_regions", None)
            if "PHONE_NUMBER" in rec.supported_entities and regions:
                phone = self._families["phone"]
                short = [
                    _PHONE_SEP.join(d) for d in _short_phone_numbers(tuple(regions))
                ]
                self._families["phone"] = _Family(
                    phone.patterns + tuple(short), phone.back
                )
        patterns: list[str] = []
        self._pattern_family: list[str] = []
        used = sorted({f for _, _, fams in self._recognizers for f in fams})
        for fam in used:
            for p in self._families[fam].patterns:
                patterns.append(p)
                self._pattern_family.append(fam)
        flags = [_hs.CASELESS | _hs.DOTALL | _hs.UTF8] * len(patterns)
        # Id of the "non-ASCII decimal digit somewhere" pattern (-1: no family needs it).
        self._non_ascii_pid = -1
        if any(f in _NON_ASCII_ONLY for f in used):
            self._non_ascii_pid = len(patterns)
            patterns.append(_non_ascii_digit_class())
            flags.append(_hs.UTF8 | _hs.SINGLEMATCH)
            self._pattern_family.append("")
        self._db: hyperscan.Database | None = (
            _hs.compile_block(patterns, flags) if patterns else None
        )
        # Gate pattern id -> index of its recognizer in ``_recognizers``. A recognizer with
        # a pattern Hyperscan cannot take stays ungated.
        gate_pairs: list[tuple[str, int]] = []
        gated: set[int] = set()
        for i, (rec, _, fams) in enumerate(self._recognizers):
            if "digits" not in fams:
                continue
            gate = _gate_patterns(rec, self.score_threshold)
            if gate and all(_prefilter_compiles(p) for p in gate):
                gated.add(i)
                gate_pairs.extend((p, i) for p in gate)
        # Presidio's registry order varies between processes; sorted, the database is the same
        # in every process (and its compiled form can be reused, see ``_hs``).
        gate_pairs.sort(key=lambda pair: pair[0])
        gates = [p for p, _ in gate_pairs]
        self._gate_of: list[int] = [i for _, i in gate_pairs]
        self._gated = frozenset(gated)
        self._gate_families = frozenset(
            f for i in gated for f in self._recognizers[i][2]
        )
        self._gate_db: hyperscan.Database | None = (
            _hs.compile_block(gates, [_GATE_FLAGS] * len(gates)) if gates else None
        )
        self._ner = self._load_ner() if ner else None
        # Load lazily-built state (libphonenumber region metadata, the suffix list) now,
        # not on the first request.
        self.scan(_WARM_UP)

    @staticmethod
    def _load_ner() -> tuple[AnalyzerEngine, list[str]] | None:
        import spacy.util

        models = [
            m
            for m in ("en_core_web_lg", "en_core_web_md", "en_core_web_sm")
            if spacy.util.is_package(m)
        ]
        if not models:
            return None
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": models[0]}],
            }
        )
        return AnalyzerEngine(nlp_engine=provider.create_engine()), list(NER_ENTITIES)

    @property
    def ner_available(self) -> bool:
        """True when the opt-in NER tier is active (a spaCy model is installed)."""
        return self._ner is not None

    def _family_hits(self, text: str) -> dict[str, list[int]]:
        """Character end offsets of anchor matches, per family."""
        if self._db is None:
            return {}
        data = text.encode("utf-8", "replace")  # a lone surrogate becomes one "?" byte
        ends: list[tuple[int, int]] = []
        append = ends.append

        def on_match(pid: int, start: int, end: int, flags: int, ctx: object) -> None:
            append((pid, end))

        self._db.scan(data, match_event_handler=on_match)
        if not ends:
            return {}
        fam_of = self._pattern_family
        non_ascii = self._non_ascii_pid
        ascii_digits = True
        if len(data) != len(text):  # non-ASCII: map byte offsets to character offsets
            ends = _to_char_offsets(data, ends)
            # "phone4" stands in for digits libphonenumber reads but the 4-digit list cannot
            # express: only needed when the text holds a non-ASCII decimal digit.
            ascii_digits = all(pid != non_ascii for pid, _ in ends)
        by_family: dict[str, list[int]] = {}
        for pid, end in ends:
            if pid == non_ascii:
                continue
            fam = fam_of[pid]
            if fam in _NON_ASCII_ONLY:
                if ascii_digits:
                    continue
                fam = _NON_ASCII_ONLY[fam]
            by_family.setdefault(fam, []).append(end)
        return by_family

    def _idle_recognizers(
        self, text: str, windows: list[tuple[int, int]]
    ) -> frozenset[int]:
        """Gated recognizers none of whose gate patterns fires inside ``windows``.

        ``windows`` cover every window of the gated recognizers' families; they are
        scanned joined by line breaks (a hit across a junction only costs a needless run).
        With a lone surrogate in them (no exact UTF-8), nothing is skipped.
        """
        if self._gate_db is None:
            return frozenset()
        try:
            data = "\n".join(text[lo:hi] for lo, hi in windows).encode("utf-8")
        except UnicodeEncodeError:
            return frozenset()
        fired: set[int] = set()
        gate_of = self._gate_of

        def on_match(pid: int, start: int, end: int, flags: int, ctx: object) -> None:
            fired.add(gate_of[pid])

        self._gate_db.scan(data, match_event_handler=on_match)
        return self._gated.difference(fired)

    @staticmethod
    def _windows(
        text: str, family: _Family, ends: Sequence[int]
    ) -> list[tuple[int, int]]:
        raw: list[tuple[int, int]] = []
        covered = -1
        n = len(text)
        for end in sorted(ends):
            if end <= covered:
                continue  # inside the previous window already
            if family.in_token:
                lo = _token_left(text, max(0, end - family.back))
                hi = _token_right(text, end)
            elif family.one_line:
                lo = text.rfind("\n", 0, end - 1)
                lo = max(lo, 0)
                hi = text.find("\n", end - 1)
                hi = n if hi < 0 else hi + 1
                if hi - lo > _LONG_LINE:
                    lo = max(lo, _snap_left(text, max(0, end - family.back)))
                    hi = min(hi, _snap_right(text, min(n, end + family.forward)))
            else:
                lo = _snap_left(text, max(0, end - family.back))
                hi = _snap_right(text, min(n, end + family.forward))
            raw.append((lo, hi))
            covered = hi - family.forward
        return _merge(raw)

    def _analyze(
        self, rec: EntityRecognizer, ents: list[str], text: str
    ) -> list[RecognizerResult]:
        """``rec.analyze`` on ``text`` (Presidio's phone recognizer through :func:`_phone_analyze`)."""
        gate = self._fast_phone.get(id(rec))
        if gate is not None:
            assert isinstance(rec, PhoneRecognizer)
            return _phone_analyze(rec, text, ents, self._empty, gate)
        return rec.analyze(text=text, entities=ents, nlp_artifacts=self._empty) or []

    def _analyze_windows(
        self,
        rec: EntityRecognizer,
        ents: list[str],
        text: str,
        windows: list[tuple[int, int]],
    ) -> list[RecognizerResult]:
        """Run one recognizer over its windows, shifting results back to ``text`` offsets.

        Several windows are joined with "\n" and analysed in one call (Presidio's per-call
        overhead dominates on small windows). Every window starts and ends on a safe edge
        (whitespace between digit-free words, a line break, or whitespace around a
        whitespace-free match), so no match can span a junction; should one ever do, the
        windows are analysed one by one instead.
        """
        if len(windows) > 1:
            pieces = [text[lo:hi] for lo, hi in windows]
            starts: list[int] = []
            pos = 0
            for piece in pieces:
                starts.append(pos)
                pos += len(piece) + 1
            found = self._analyze(rec, ents, "\n".join(pieces))
            shifted: list[RecognizerResult] = []
            for r in found:
                i = bisect.bisect_right(starts, r.start) - 1
                if r.end > starts[i] + len(pieces[i]):
                    break  # spans a junction: fall back to one call per window
                shift = windows[i][0] - starts[i]
                shifted.append(
                    RecognizerResult(
                        r.entity_type,
                        r.start + shift,
                        r.end + shift,
                        r.score,
                        r.analysis_explanation,
                    )
                )
            else:
                return shifted
        out: list[RecognizerResult] = []
        for lo, hi in windows:
            for r in self._analyze(rec, ents, text[lo:hi]):
                out.append(
                    RecognizerResult(
                        r.entity_type,
                        r.start + lo,
                        r.end + lo,
                        r.score,
                        r.analysis_explanation,
                    )
                )
        return out

    def scan_results(self, text: str) -> list[RecognizerResult]:
        """Presidio ``RecognizerResult``s, exactly as ``AnalyzerEngine.analyze`` would return them."""
        hits = self._family_hits(text)
        results: list[RecognizerResult] = []
        if hits:
            family_windows = {
                fam: self._windows(text, self._families[fam], ends)
                for fam, ends in hits.items()
            }
            gate_windows = [
                w for f in self._gate_families for w in family_windows.get(f, ())
            ]
            idle = (
                self._idle_recognizers(text, _merge(gate_windows))
                if gate_windows
                else frozenset()
            )
            for i, (rec, ents, fams) in enumerate(self._recognizers):
                if i in idle:
                    continue
                present = [family_windows[f] for f in fams if f in family_windows]
                if not present:
                    continue
                windows = (
                    present[0]
                    if len(present) == 1
                    else _merge([w for ws in present for w in ws])
                )
                results.extend(self._analyze_windows(rec, ents, text, windows))
        threshold = self.score_threshold
        results = [r for r in results if r.score >= threshold]
        if self._ner is not None:
            engine, ner_entities = self._ner
            wanted = [e for e in ner_entities if e in self.entities]
            if wanted:
                results.extend(
                    engine.analyze(
                        text=text,
                        language="en",
                        entities=wanted,
                        score_threshold=threshold,
                    )
                )
        return EntityRecognizer.remove_duplicates(results) if results else results

    def scan(self, text: str) -> list[PiiFinding]:
        """Findings ordered by position (a new list each call)."""
        hit = self._cache.get(text)
        if hit is not None:
            return list(hit)
        found = [
            PiiFinding(r.entity_type, r.start, r.end, r.score)
            for r in self.scan_results(text)
        ]
        found.sort(key=lambda f: (f.start, f.end, f.entity_type))
        self._cache.put(text, tuple(found))
        return found
