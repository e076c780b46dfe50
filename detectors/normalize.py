"""Text normalisation run before every detector.

``normalize(text)`` undoes the cheap character-level evasions attackers use to
slip past pattern matchers, while keeping a map back to the original string:

* NFKC (full-width, mathematical alphanumerics, ligatures, compatibility forms);
* removal of zero-width characters, Unicode tag characters (U+E0000..U+E007F),
  bidi controls and every other format (Cf) or control character, and of
  stand-alone combining marks (so "ï" and zalgo text fold to their base letter);
* homoglyph folding (Cyrillic / Greek / small-capital look-alikes to Latin);
* casefolding;
* letter-by-letter spacing ("i g n o r e", "i.g.n.o.r.e") collapsed into the word;
* runs of whitespace collapsed to one space, or one newline if the run held one.

``Normalized.offsets[i]`` is the index in the original text of normalised
character ``i``; one trailing entry equals ``len(original)``. ``Normalized.decoded``
holds extra strings decoded from embedded base64, hex, %-URL-encoding and rot13
spans: a detector scans them as well.

Speed (the result is the same on every path):

* the text is built without offsets; the offsets, which only redaction needs, come
  from a second pass over the original the first time ``Normalized.offsets`` is read
  (tests hold the two passes to the same text);
* pure-ASCII text is probed for encodings and edits in one Hyperscan scan; without
  whitespace runs, control characters or the spacing trick it costs one ``str.lower``
  and that scan, and its offsets are a ``range``;
* non-ASCII characters are found with numpy (long texts) and folded run by run;
* whitespace runs and control characters are found on a one-byte-per-character
  ASCII image of the text with ``bytes.translate`` and numpy;
* the base64 and spacing regexes run only where a Hyperscan probe reported a
  candidate, never over the whole text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from array import array
from collections.abc import Iterable, Iterator, Sequence
from urllib.parse import unquote

import numpy as np

from . import _hs

__all__ = ["Normalized", "normalize", "HOMOGLYPHS"]


class Normalized:
    """A normalised text, its decoded payloads, and (computed on first use) its map back to the original.

    Detectors only read ``text`` and ``decoded``; the offsets, which cost as much as the normalisation itself,
    are built by a second, mapped pass over the original only when a caller asks for them.
    """

    __slots__ = ("text", "decoded", "_source", "_offsets")

    def __init__(self, text: str, decoded: tuple[str, ...], source: str,
                 offsets: Sequence[int] | None = None) -> None:
        self.text = text
        self.decoded = decoded
        self._source = source
        self._offsets = offsets

    @property
    def offsets(self) -> Sequence[int]:
        """``offsets[i]`` is the index in the original of normalised character ``i``, plus one trailing
        entry equal to ``len(original)``."""
        if self._offsets is None:
            self._offsets = _mapped(self._source)[1]
        return self._offsets

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map the half-open span ``[start, end)`` of ``text`` to the original string."""
        offsets = self.offsets
        if end <= start:
            pos = offsets[start]
            return pos, pos
        return offsets[start], offsets[end - 1] + 1

    def __repr__(self) -> str:
        return f"Normalized(text={self.text!r}, decoded={self.decoded!r})"


# Look-alikes that NFKC leaves alone, folded after casefolding (lower-case keys).
HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "г": "r", "е": "e", "ё": "e", "з": "3", "и": "u", "й": "u",
    "к": "k", "м": "m", "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "ь": "b", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "һ": "h",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g", "ԍ": "g", "ү": "y", "ҫ": "c",
    # Greek
    "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "η": "n", "ι": "i", "κ": "k",
    "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c",
    "ϳ": "j", "ς": "s", "μ": "u",
    # Latin small capitals and other IPA look-alikes
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h",
    "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
    "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i", "ʋ": "u", "ɒ": "a", "ꞵ": "b",
    # Armenian / Cherokee-style shapes seen in evasion kits
    "օ": "o", "ս": "u", "ց": "g", "զ": "q", "ɾ": "r",
}

_DROP_CATEGORIES = frozenset({"Cf", "Cc", "Mn", "Me", "Cs"})
_FOLD_CACHE: dict[str, str] = {}
_FOLD_CACHE_MAX = 1 << 16


def _fold_char(c: str) -> str:
    """Normalise one non-ASCII character (cached)."""
    r = _FOLD_CACHE.get(c)
    if r is not None:
        return r
    if c in "\u2028\u2029\x85":
        r = "\n"
    elif unicodedata.category(c) in _DROP_CATEGORIES:
        r = ""
    else:
        s = unicodedata.normalize("NFKC", c)
        if not s.isascii():
            stripped = "".join(
                ch for ch in unicodedata.normalize("NFKD", s)
                if unicodedata.category(ch) not in _DROP_CATEGORIES
            )
            if stripped.isascii() and stripped:
                s = stripped
        s = s.casefold()
        r = "".join(HOMOGLYPHS.get(ch, ch) for ch in s)
        if not r.isascii():
            # Re-check: a compatibility form may have produced a format character.
            r = "".join(ch for ch in r if unicodedata.category(ch) not in _DROP_CATEGORIES)
    if len(_FOLD_CACHE) < _FOLD_CACHE_MAX:
        _FOLD_CACHE[c] = r
    return r


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
# Single letters separated by the same one separator, at least three letters. A space-separated run does not take
# the first letter of a run with another separator ("g r o u p l.e.t.t.e.r.s": the "l" starts "letters"; the space
# before it separates the words).
_SPACED = re.compile(
    r"(?<![a-z0-9])[a-z](?P<sep>[ .\-_*|/+~,:;'`\"^=])[a-z](?:(?P=sep)[a-z])+(?![a-z0-9])"
    r"(?!(?<= [a-z])[.\-_*|/+~,:;'`\"^=][a-z])"
)
_SPACED_SEPS = re.compile(r"[^a-z]")

# Hyperscan probes: cheap existence checks that decide which slow step runs at all.
_SEP = r"[ .\-_*|/+~,:;'`\"^=]"
_P_SPACED, _P_WS, _P_CTRL = 0, 1, 2
_EDIT_PATTERNS = [
    rf"(^|[^a-z0-9])[a-z]{_SEP}[a-z]{_SEP}[a-z]([^a-z0-9]|$)",
    r"[ \t\n\r\f\v]{2}|[\t\r\f\v]",
    r"[\x00-\x08\x0e-\x1f\x7f]",
]
_EDIT_FLAGS = [_hs.SINGLEMATCH, _hs.SINGLEMATCH, _hs.SINGLEMATCH]
_EDIT_DB = _hs.compile_block(_EDIT_PATTERNS, _EDIT_FLAGS)

# bytes.translate tables (C speed, no index-array conversion as with ndarray.take). 1-D arrays throughout:
# ``a.nonzero()[0]`` is ``np.flatnonzero(a)`` without its Python wrapper.
_WS_CHARS = b" \t\n\r\f\v"
_IS_WS = bytes(1 if i in _WS_CHARS else 0 for i in range(256))
_IS_CTRL = bytes(1 if i in (*range(0, 9), *range(14, 32), 127) else 0 for i in range(256))
_WS_TO_SPACE = bytes(32 if i in b"\t\r\f\v" else i for i in range(256))
_WS_NOT_NEWLINE = tuple((ch, ch.encode()) for ch in "\t\r\f\v")


# The spacing probe with start-of-match: every match of ``_SPACED`` starts at, or one after, a reported start.
_SPACED_DB = _hs.compile_block([_EDIT_PATTERNS[_P_SPACED]], [_hs.SOM])


def _spaced_matches(t: str) -> Iterator[re.Match[str]]:
    """``_SPACED.finditer(t)``, with the regex tried only where the Hyperscan probe saw a candidate.

    The probe runs on a one-byte-per-character image of ``t`` (non-ASCII characters become ``?``, which
    like them is neither a letter nor a separator).
    """
    image = t.encode("ascii") if t.isascii() else t.encode("ascii", "replace")
    starts = sorted({s if s == 0 and 97 <= image[0] <= 122 else s + 1
                     for _, s, _ in _hs.scan_matches(_SPACED_DB, image)})
    pos = 0
    for s in starts:
        if s < pos:
            continue
        m = _SPACED.match(t, s)
        if m is not None:
            yield m
            pos = m.end()


def _collapse_spacing_text(t: str, matches: Iterable[re.Match[str]] | None = None) -> str:
    """``t`` with every letter-spaced word ("i g n o r e") written without its separators."""
    out: list[str] = []
    pos = 0
    for m in _spaced_matches(t) if matches is None else matches:
        s, e = m.span()
        out.append(t[pos:s])
        out.append(_SPACED_SEPS.sub("", m.group()))
        pos = e
    out.append(t[pos:])
    return "".join(out)


def _collapse_spacing(t: str, off: np.ndarray) -> tuple[str, np.ndarray]:
    matches = list(_spaced_matches(t))
    keep = np.ones(len(t), dtype=bool)
    for m in matches:
        s, e = m.span()
        # Separators sit at every odd position of the match.
        keep[s + 1:e:2] = False
    return _collapse_spacing_text(t, matches), off[keep]


_CTRL_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
# Up to this length str.replace passes beat numpy's fixed cost (0.8 against 4.5 us for 40 characters).
_REPLACE_MAX = 1024


def _collapse_whitespace_text(t: str, has_ctrl: bool) -> str:
    """``_collapse_whitespace(t, has_ctrl)[0]``; short texts by C-speed ``str.replace`` passes.

    Tab, CR, FF and VT become spaces; runs of spaces halve per pass; single spaces next to a
    newline go; newline runs halve per pass. Control characters go last, so one between two
    spaces separates two runs, as in the mapped pass.
    """
    if len(t) > _REPLACE_MAX:
        return _collapse_whitespace(t, has_ctrl)[0]
    for ch in "\t\r\f\v":
        if ch in t:
            t = t.replace(ch, " ")
    while "  " in t:
        t = t.replace("  ", " ")
    if " \n" in t:
        t = t.replace(" \n", "\n")
    if "\n " in t:
        t = t.replace("\n ", "\n")
    while "\n\n" in t:
        t = t.replace("\n\n", "\n")
    return _CTRL_RE.sub("", t) if has_ctrl else t


def _collapse_whitespace(t: str, has_ctrl: bool) -> tuple[str, np.ndarray]:
    """Drop control characters; a whitespace run becomes one space, or one newline if it held one.

    Returns the new text and the mask of the characters of ``t`` it keeps. The run structure is computed
    on a one-byte-per-character ASCII image of ``t`` (non-ASCII characters become ``?``, which is neither
    whitespace nor control).
    """
    is_ascii = t.isascii()
    image = t.encode("ascii") if is_ascii else t.encode("ascii", "replace")
    # A leading non-whitespace sentinel lines "this and the previous character are whitespace" up with t.
    ws = np.frombuffer((b"x" + image).translate(_IS_WS), dtype=bool)
    drop = ws[1:] & ws[:-1]
    spaced = image.translate(_WS_TO_SPACE)
    # The first character of each run stays: a space, or a newline if the run held one.
    lost_nl: np.ndarray | None = None
    if b" \n" in spaced:  # a run holds a newline after its first character
        lost_nl = (drop & (np.frombuffer(image, dtype=np.uint8) == 10)).nonzero()[0]
        if lost_nl.size:
            starts = (ws[1:] & ~drop).nonzero()[0]
            lost_nl = starts[np.searchsorted(starts, lost_nl, side="right") - 1]
        else:
            lost_nl = None
    if has_ctrl:
        drop |= np.frombuffer(image.translate(_IS_CTRL), dtype=bool)
    keep = ~drop
    if is_ascii:
        mapped = spaced
        dtype, codec = np.uint8, "ascii"
    else:
        for ch, byte in _WS_NOT_NEWLINE:
            if byte in image:  # a one-byte search (memchr) instead of a scan of the wide string
                t = t.replace(ch, " ")
        mapped = t.encode("utf-32-le")
        dtype, codec = np.uint32, "utf-32-le"
    if lost_nl is None:
        out = np.frombuffer(mapped, dtype=dtype)
    else:
        out = np.frombuffer(bytearray(mapped), dtype=dtype)
        out[lost_nl] = 10
    return out[keep].tobytes().decode(codec), keep


_RUN_CACHE: dict[str, tuple[str, tuple[int, ...] | None]] = {}
_RUN_CACHE_MAX = 1 << 14


def _fold_run(run: str) -> tuple[str, tuple[int, ...] | None]:
    """Fold a run of non-ASCII characters: (folded text, per-char output lengths or None if all are 1)."""
    hit = _RUN_CACHE.get(run)
    if hit is not None:
        return hit
    fold = _FOLD_CACHE.get
    parts = [fold(c) or _fold_char(c) for c in run]
    lens = tuple(map(len, parts))
    res = ("".join(parts), None if lens.count(1) == len(lens) else lens)
    if len(run) <= 4 and len(_RUN_CACHE) < _RUN_CACHE_MAX:
        _RUN_CACHE[run] = res
    return res


_NUMPY_RUNS_MIN = 256


def _non_ascii_runs(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every maximal run of non-ASCII characters, in order."""
    if len(text) < _NUMPY_RUNS_MIN:
        return [m.span() for m in _NON_ASCII_RUN.finditer(text)]
    # A regex scan of a wide (UCS-2/4) string costs ~15 ns a character; numpy finds the runs 8x faster.
    cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    pos = (cp > 127).nonzero()[0]
    if not pos.size:
        return []
    if pos.size < 64:  # typical text: a few curly quotes or dashes; grouping them in Python is cheaper
        runs: list[tuple[int, int]] = []
        start = prev = -2
        for p in pos.tolist():
            if p != prev + 1:
                if start >= 0:
                    runs.append((start, prev + 1))
                start = p
            prev = p
        runs.append((start, prev + 1))
        return runs
    breaks = ((pos[1:] - pos[:-1]) != 1).nonzero()[0]
    starts = np.concatenate((pos[:1], pos[breaks + 1]))
    ends = np.concatenate((pos[breaks], pos[-1:])) + 1
    return list(zip(starts.tolist(), ends.tolist()))


def _fold_text(text: str) -> str:
    """``_fold_non_ascii(text)[0]`` without the offset bookkeeping."""
    out: list[str] = []
    pos = 0
    for s, e in _non_ascii_runs(text):
        if s > pos:
            out.append(text[pos:s].lower())
        out.append(_fold_run(text[s:e])[0])
        pos = e
    out.append(text[pos:].lower())
    return "".join(out)


def _fold_non_ascii(text: str) -> tuple[str, np.ndarray | None]:
    """Fold every non-ASCII character; offsets repeat an index when one character expands (None: identity)."""
    out: list[str] = []
    changed_at: list[int] = []
    changed_len: list[int] = []
    pos = 0
    for s, e in _non_ascii_runs(text):
        if s > pos:
            out.append(text[pos:s].lower())
        folded, lens = _fold_run(text[s:e])
        out.append(folded)
        if lens is not None:
            for k, n in enumerate(lens):
                if n != 1:
                    changed_at.append(s + k)
                    changed_len.append(n)
        pos = e
    out.append(text[pos:].lower())
    if not changed_at:
        return "".join(out), None
    lengths = np.ones(len(text), dtype=np.int64)
    lengths[changed_at] = changed_len
    return "".join(out), np.repeat(np.arange(len(text), dtype=np.int64), lengths)


# ---------------------------------------------------------------------------
# Embedded encodings
# ---------------------------------------------------------------------------

_MAX_DECODED = 8
_MAX_DECODE_CHARS = 16384
_B64, _HEX, _URL, _ROT13 = 0, 1, 2, 3
_B64_PROBE_LEN = 24
_DECODE_PATTERNS = [
    # Reported once per run of base64 characters at least 24 long, at the run's start + 24.
    rf"(?:^|[^A-Za-z0-9+/])[A-Za-z0-9+/]{{{_B64_PROBE_LEN}}}",
    r"(?:\\x[2-7][0-9a-fA-F]){6}|(?:[2-7][0-9a-fA-F]){8}|(?:[2-7][0-9a-fA-F][ :]){7}[2-7]",
    r"(?:%[0-9a-fA-F]{2}[^\s%]{0,3}){3}",
    # rot13 forms of words that only show up in rot13-wrapped instructions.
    r"\b(?:vtaber|qvfertneq|vafgehpgvbaf?|flfgrz|cebzcg|cerivbhf|cnffjbeq|erirny|sbetrg|cergraq|rot-?13)\b",
]
_DECODE_FLAGS = [0, _hs.SINGLEMATCH, _hs.SINGLEMATCH, _hs.SINGLEMATCH | _hs.CASELESS]
_DECODE_DB = _hs.compile_block(_DECODE_PATTERNS, _DECODE_FLAGS)
# Pure-ASCII text: decode and edit probes in one pass over the lower-cased bytes (edit ids shifted by this).
_EDIT_ID0 = len(_DECODE_PATTERNS)
_ASCII_DB = _hs.compile_block(_DECODE_PATTERNS + _EDIT_PATTERNS, _DECODE_FLAGS + _EDIT_FLAGS)
_FIND = {
    _B64: re.compile(r"[A-Za-z0-9+/]{24,}={0,2}"),
    _HEX: re.compile(r"(?:\\x[2-7][0-9a-fA-F]){6,}|(?:[2-7][0-9a-fA-F]){8,}|(?:[2-7][0-9a-fA-F][ :]){7,}[2-7][0-9a-fA-F]"),
    _URL: re.compile(r"[A-Za-z0-9._~+-]*+(?:%[0-9a-fA-F]{2}[A-Za-z0-9._~+-]*+){3,}"),
}


def _printable_text(s: str) -> bool:
    if len(s) < 6:
        return False
    good = sum(1 for ch in s if ch.isalpha() or ch == " ")
    bad = sum(1 for ch in s if not ch.isprintable() and ch not in "\n\t\r")
    return bad == 0 and good >= 0.6 * len(s) and " " in s.strip()


def _decode_b64(s: str) -> str | None:
    s = s.rstrip("=")
    pad = "=" * (-len(s) % 4)
    try:
        raw = base64.b64decode(s + pad, validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


_HEX_NOISE = re.compile(r"\\x|[ :]")


def _decode_hex(s: str) -> str | None:
    digits = _HEX_NOISE.sub("", s)
    if len(digits) % 2:
        return None
    try:
        return bytes.fromhex(digits).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _decode_one(kind: int, span: str) -> str | None:
    if kind == _B64:
        return _decode_b64(span)
    if kind == _HEX:
        return _decode_hex(span)
    dec = unquote(span)
    return None if dec == span else dec


def _probe(db: object, data: bytes) -> tuple[set[int], set[int], list[int]]:
    """Scan ``data`` with ``_DECODE_DB`` or ``_ASCII_DB``: the decode probe ids found, the edit probe ids
    found (only ``_ASCII_DB`` has them), and the byte end offsets of the base64 run reports."""
    decode: set[int] = set()
    edit: set[int] = set()
    b64_ends: list[int] = []

    def on_match(pid: int, start: int, end: int, flags: int, ctx: object) -> None:
        if pid == _B64:
            b64_ends.append(end)
        elif pid < _EDIT_ID0:
            decode.add(pid)
        else:
            edit.add(pid - _EDIT_ID0)

    db.scan(data, match_event_handler=on_match)  # type: ignore[attr-defined]
    if b64_ends:
        decode.add(_B64)
    return decode, edit, b64_ends


def _b64_spans(head: str, data: bytes, b64_ends: list[int], is_ascii: bool) -> Iterator[str]:
    """The base64 matches of ``head``, found from the probe's run reports instead of a regex scan of it all.

    A base64 match is a maximal run of base64 characters at least 24 long, so it starts where a reported run
    starts. ``data`` is UTF-8: the run's start is an ASCII byte, and the characters before it are counted by
    decoding the bytes between consecutive runs.
    """
    find = _FIND[_B64]
    char = byte = 0
    for end in sorted(b64_ends):
        start = end - _B64_PROBE_LEN
        if is_ascii:
            char = start
        else:
            char += len(data[byte:start].decode("utf-8", "surrogatepass"))
            byte = start
        if char >= len(head):
            return
        m = find.match(head, char)
        if m is not None:
            yield m.group()


def _decode_spans(text: str, data: bytes, probes: set[int], b64_ends: list[int]) -> tuple[str, ...]:
    """Strings decoded from base64 / hex / %-encoded spans of ``text``, and its rot13 form if hinted.

    ``data`` is the bytes the probes ran on (lower-cased ASCII, or the UTF-8 of ``text``).
    """
    if not probes:
        return ()
    found: list[str] = []
    head = text[: _MAX_DECODE_CHARS * 4]
    for kind in (_B64, _HEX, _URL):
        if kind not in probes:
            continue
        if kind == _B64:
            spans: Iterable[str] = _b64_spans(head, data, b64_ends, len(data) == len(text))
        else:
            spans = (m.group() for m in _FIND[kind].finditer(head))
        for span in spans:
            dec = _decode_one(kind, span)
            if dec is not None and _printable_text(dec) and dec not in found:
                found.append(dec[:_MAX_DECODE_CHARS])
                if len(found) >= _MAX_DECODED:
                    return tuple(found)
    if _ROT13 in probes:
        found.append(codecs.encode(text[:_MAX_DECODE_CHARS], "rot13"))
    return tuple(found)


# ---------------------------------------------------------------------------


def normalize(text: str) -> Normalized:
    """Normalise ``text`` for detection; see the module docstring for the steps."""
    if text.isascii():
        t = text.lower()
        data = t.encode("ascii")
        decode_probes, probes, b64_ends = _probe(_ASCII_DB, data)
        decoded = _decode_spans(text, data, decode_probes, b64_ends)
        if not probes:
            return Normalized(t, decoded, text, range(len(text) + 1))
    else:
        data = text.encode("utf-8", "surrogatepass")
        decode_probes, _, b64_ends = _probe(_DECODE_DB, data)
        decoded = _decode_spans(text, data, decode_probes, b64_ends)
        t = _fold_text(text)
        probes = _hs.scan_ids(_EDIT_DB, t.encode("utf-8", "surrogatepass"))
    if _P_SPACED in probes:
        t = _collapse_spacing_text(t)
    if _P_WS in probes or _P_CTRL in probes:
        t = _collapse_whitespace_text(t, _P_CTRL in probes)
    return Normalized(t, decoded, text)


def _mapped(text: str) -> tuple[str, Sequence[int]]:
    """The normalised text and its offsets, computed together (numpy); ``normalize`` gives the same text."""
    if text.isascii():
        t = text.lower()
        off: np.ndarray | None = None  # identity, until a step drops characters
    else:
        t, off = _fold_non_ascii(text)
    probes = _hs.scan_ids(_EDIT_DB, t.encode("utf-8", "surrogatepass"))
    if not probes and off is None:
        return t, range(len(text) + 1)
    if _P_SPACED in probes:
        t, off = _collapse_spacing(t, np.arange(len(t), dtype=np.int64) if off is None else off)
    if _P_WS in probes or _P_CTRL in probes:
        t, keep = _collapse_whitespace(t, _P_CTRL in probes)
        off = keep.nonzero()[0] if off is None else off[keep]
    if off is None:
        off = np.arange(len(t), dtype=np.int64)
    offsets = array("q")
    offsets.frombytes(off.astype(np.int64, copy=False).tobytes())
    offsets.append(len(text))
    return t, offsets


