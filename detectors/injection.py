"""Prompt-injection and jailbreak detection.

Two local tiers, both compiled / loaded once per ``InjectionDetector``:

1. **Signatures** — the curated rule set in ``detectors/rules/injection_rules.py``,
   compiled into one Hyperscan block-mode database and scanned over the
   normalised text and every decoded payload (base64, hex, %-encoding, rot13).
   Matched rule weights are combined by noisy-or into ``signature_score``.
   The scan is context-aware: rules marked ``embedded`` (text that addresses the
   assistant, shapes its answer or carries code into it) count only for text the
   application did not write, i.e. messages of role ``tool`` (retrieved documents,
   tool results); the same phrasing in a user's own request is ordinary.
2. **Learned model** — logistic regression over hashed word 1-2-grams and byte
   3-5-grams of the normalised text (``2**HASH_BITS`` buckets), trained by
   ``python -m bench.train_injection``. Features are computed with a handful of
   numpy operations over the UTF-8 bytes; long texts are scored in overlapping
   windows and the worst window counts.

A small stacked model maps (signature score, gated model logit) to one
probability-like ``score``: ``sigmoid(c0 + c_sig * signature + c_model * z)``,
where ``z`` (the model logit, clipped to ``±LOGIT_CLIP``) counts only for the roles
in ``model_roles`` (text the user or the application wrote, where persona
jailbreaks live) and only while the signature score lies in the ``model_gate`` band:
a signature matched, strong enough that the model could tip it over the threshold
and not so strong that it flags whatever the model says. Held-out validation
showed the model carries over to unseen templates of known attack families but not
to unseen sources, and not to documents at all; the gate keeps it where it helps
and, because most traffic matches no signature, skips its cost almost everywhere.
The stacker is fitted on pooled held-out logits (grouped k-fold and
leave-one-source-out), each role has its own threshold, and ``uncertain(score)``
says whether an optional remote classifier should be asked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _hs
from ._lru import TextLRU
from .normalize import Normalized, normalize
from .rules.injection_rules import CATEGORIES, RULES, InjectionRule

__all__ = [
    "AMPLIFY_FROM",
    "LOGIT_CLIP",
    "DEFAULT_MODEL_PATH",
    "EMBEDDED_ROLES",
    "ROLES",
    "InjectionDetector",
    "InjectionResult",
    "SignatureHits",
    "SignatureMatcher",
    "combine",
    "feature_windows",
    "hashed_features",
    "text_features",
    "window_logit",
]

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
# The model logit is clipped to this range before the stacker sees it (training does the same).
LOGIT_CLIP = 10.0
DEFAULT_MODEL_PATH = Path(__file__).parent / "data" / "injection_model.npz"

# --- feature hashing ---------------------------------------------------------------------------

HASH_BITS = 18
# Long texts are scored in windows of two consecutive blocks (1 KiB, stride 512 B) so that a short
# injected instruction is not diluted by the document around it; the worst window counts.
BLOCK_BYTES = 512
WINDOW_BYTES = 2 * BLOCK_BYTES
WINDOW_STRIDE = BLOCK_BYTES
_CHUNK_BYTES = 1 << 16  # hashing works on at most this many bytes at a time

# All hashing is done in uint32 arithmetic (wraps mod 2**32), which numpy vectorises well.
_M32 = (1 << 32) - 1
_P = 0x01000193  # FNV-32 prime (odd, so invertible mod 2**32)
_Q = pow(_P, -1, 1 << 32)
_U_P = np.uint32(_P)
_U_P2 = np.uint32(0x9E3779B1)
_U_MIX = np.uint32(0x85EBCA6B)
_U_SHIFT = np.uint32(32 - HASH_BITS)
_U_CHAR_SALT = np.uint32(0x5BD1E995)
_U_WORD_SALT = np.uint32(0x27D4EB2F)


def _powers(base: int, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint32)
    acc = 1
    for i in range(n):
        out[i] = acc
        acc = (acc * base) & _M32
    return out


_PPOW = _powers(_P, _CHUNK_BYTES + 1)
_QPOW = _powers(_Q, _CHUNK_BYTES + 1)
_BLOCK_OF = (np.arange(_CHUNK_BYTES, dtype=np.int64) // BLOCK_BYTES).astype(np.intp)
# Word bytes: ASCII letters, digits, apostrophe, underscore, and every non-ASCII byte (UTF-8 letters).
_WORD_LUT = np.zeros(256, dtype=np.int8)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_'":
    _WORD_LUT[_c] = 1
_WORD_LUT[128:] = 1


def hashed_features(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Bucket ids (one per occurrence) of byte 3/4/5-grams and word 1/2-grams, and the block
    (start byte // BLOCK_BYTES) each occurrence starts in. ``data``: UTF-8 of normalised text,
    at most 64 KiB (``text_features`` splits longer input)."""
    n = len(data)
    if n == 0:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.intp)
    raw = np.frombuffer(data, dtype=np.uint8)
    b = raw.astype(np.uint32)
    parts = []
    blocks = []
    if n >= 3:
        # Polynomial rolling hash: h_k[i] covers bytes i .. i+k-1.
        h = (b[:-1] + _U_CHAR_SALT) * _U_P + b[1:]
        for k in range(3, min(n, 5) + 1):
            h = h[:-1] * _U_P + b[k - 1:]
            parts.append(h)
            blocks.append(_BLOCK_OF[: n - k + 1])
    isw = _WORD_LUT.take(raw)
    edges = np.empty(n + 1, dtype=np.int8)
    edges[0] = isw[0]
    np.subtract(isw[1:], isw[:-1], out=edges[1:n])
    edges[n] = -isw[-1]
    starts = np.flatnonzero(edges == 1)
    if starts.size:
        ends = np.flatnonzero(edges == -1)
        prefix = np.zeros(n + 1, dtype=np.uint32)
        np.cumsum(raw * _QPOW[:n], dtype=np.uint32, out=prefix[1:])
        # (prefix[e] - prefix[s]) * P**s depends on the word's bytes only, not on where it sits.
        words = (prefix.take(ends) - prefix.take(starts)) * _PPOW.take(starts) + _U_WORD_SALT
        word_blocks = _BLOCK_OF.take(starts)
        parts.append(words)
        blocks.append(word_blocks)
        if words.size > 1:
            parts.append(words[:-1] * _U_P2 + words[1:])
            blocks.append(word_blocks[:-1])
    if not parts:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.intp)
    ids = np.concatenate(parts)
    ids *= _U_MIX
    ids >>= _U_SHIFT
    return ids, np.concatenate(blocks)


def text_features(norm_text: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``hashed_features`` of a normalised text, one entry per 64 KiB chunk."""
    data = norm_text.encode("utf-8", "surrogatepass")
    if len(data) <= _CHUNK_BYTES:
        return [hashed_features(data)]
    return [hashed_features(data[i:i + _CHUNK_BYTES]) for i in range(0, len(data), _CHUNK_BYTES)]


def feature_windows(norm_text: str) -> list[np.ndarray]:
    """Feature ids of each scoring window (two consecutive blocks) of a normalised text."""
    out: list[np.ndarray] = []
    for ids, blocks in text_features(norm_text):
        nb = int(blocks.max()) + 1 if blocks.size else 1
        if nb <= 2:
            out.append(ids)
            continue
        for k in range(nb - 1):
            out.append(ids[(blocks == k) | (blocks == k + 1)])
    return out


def window_logit(weights: np.ndarray, bias: float, ids: np.ndarray, blocks: np.ndarray) -> float:
    """Worst-window logit: bias + sum of weights / sqrt(occurrences), windows of two blocks."""
    if ids.size == 0:
        return bias
    wv = weights.take(ids)
    nb = int(blocks.max()) + 1
    if nb <= 2:
        return bias + float(wv.sum()) / math.sqrt(ids.size)
    sums = np.bincount(blocks, weights=wv, minlength=nb)
    counts = np.bincount(blocks, minlength=nb)
    ws = sums[:-1] + sums[1:]
    wc = counts[:-1] + counts[1:]
    ok = wc > 0
    return bias + float((ws[ok] / np.sqrt(wc[ok])).max())


# --- signatures --------------------------------------------------------------------------------

# Derived signal, not a pattern: a decoded payload (base64, hex, ...) matched a rule.
ENCODED_PAYLOAD_RULE = InjectionRule(
    "OB-ENCODED-PAYLOAD", "obfuscation", 0.5, "",
    "An encoded span decodes to text that matches an injection signature.",
)


@dataclass(frozen=True, slots=True)
class SignatureHits:
    rules: tuple[InjectionRule, ...]
    score: float


# Raw-text evasion markers amplify signature scores from this level up.
AMPLIFY_FROM = 0.45

# Roles whose text the application did not write itself: retrieved documents and tool results.
EMBEDDED_ROLES: frozenset[str] = frozenset({"tool"})


def combine(rules: Sequence[InjectionRule], embedded: bool) -> SignatureHits:
    """Keep the rules that count in this context and combine their weights by noisy-or.

    ``embedded`` is True for text the application did not write (documents, tool results): there
    the rules marked ``embedded`` (text addressing the assistant, shaping its answer) count too.
    Raw-text markers (invisible characters, mixed scripts) only amplify: normalisation already
    undoes those evasions, and benign text can carry such characters, so alone they score 0; and they
    amplify only a signal that is already meaningful (``AMPLIFY_FROM``), not one weak rule, so that text
    with stray invisible characters and one weak match is not flagged."""
    kept = rules if embedded else tuple(r for r in rules if not r.embedded)
    miss = 1.0
    for r in kept:
        if not r.raw:
            miss *= 1.0 - r.weight
    if miss <= 1.0 - AMPLIFY_FROM:
        for r in kept:
            if r.raw:
                miss *= 1.0 - r.weight
    return SignatureHits(tuple(kept), 1.0 - miss)


class SignatureMatcher:
    """The rule set compiled into Hyperscan databases (one for normalised text, one for raw text)."""

    def __init__(self, rules: Sequence[InjectionRule] = RULES) -> None:
        unknown = {r.category for r in rules} - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown rule categories: {sorted(unknown)}")
        self._norm = tuple(r for r in rules if not r.raw)
        self._raw = tuple(r for r in rules if r.raw)
        flags = _hs.CASELESS | _hs.SINGLEMATCH
        self._norm_db = _hs.compile_block([r.pattern for r in self._norm], [flags] * len(self._norm))
        self._raw_db = (
            _hs.compile_block([r.pattern for r in self._raw], [_hs.UTF8 | _hs.SINGLEMATCH] * len(self._raw))
            if self._raw else None
        )

    def matched_rules(self, original: str, norm: Normalized,
                      decoded: Sequence[Normalized] = ()) -> tuple[InjectionRule, ...]:
        """Every rule that matches, whatever the context (``combine`` then keeps the ones that count)."""
        hit = [self._norm[i] for i in sorted(_hs.scan_ids(self._norm_db, norm.text.encode("utf-8", "surrogatepass")))]
        if self._raw_db is not None and not original.isascii():
            raw = _hs.scan_ids(self._raw_db, original.encode("utf-8", "surrogatepass"))
            hit.extend(self._raw[i] for i in sorted(raw))
        seen = {r.id for r in hit}
        encoded_hit = False
        for d in decoded:
            for i in sorted(_hs.scan_ids(self._norm_db, d.text.encode("utf-8", "surrogatepass"))):
                encoded_hit = True
                if self._norm[i].id not in seen:
                    seen.add(self._norm[i].id)
                    hit.append(self._norm[i])
        if encoded_hit:
            hit.append(ENCODED_PAYLOAD_RULE)
        return tuple(hit)

    def match(self, original: str, norm: Normalized, decoded: Sequence[Normalized] = (),
              *, embedded: bool = False) -> SignatureHits:
        """Rules that count for this text and their combined score (see ``combine``)."""
        return combine(self.matched_rules(original, norm, decoded), embedded)


# --- detector ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InjectionResult:
    """``model_score`` is the learned tier's own probability, 0.0 when it was not consulted (no signature
    matched outside documents, see the module docstring)."""
    score: float
    flagged: bool
    role: str
    rule_ids: tuple[str, ...]
    categories: tuple[str, ...]
    signature_score: float
    model_score: float


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class _Model:
    weights: np.ndarray  # float32[2**HASH_BITS]
    bias: float
    calibration: tuple[float, float, float]  # intercept, signature coefficient, (gated) model-logit coefficient
    model_roles: frozenset[str]  # roles whose score uses the model logit (when the signature score is in the gate)
    gate: tuple[float, float]  # signature scores in [lo, hi) (and > 0) consult the model
    thresholds: dict[str, float]
    band: tuple[float, float]


def _load_model(path: Path) -> _Model:
    if not path.exists():
        raise FileNotFoundError(f"injection model not found at {path}; run `make train-detectors`")
    with np.load(path) as z:
        weights = np.ascontiguousarray(z["weights"], dtype=np.float32)
        bias = float(z["bias"])
        calib = tuple(float(v) for v in z["calibration"])
    if weights.shape != (1 << HASH_BITS,):
        raise ValueError(f"{path}: expected {1 << HASH_BITS} weights, got {weights.shape}")
    meta = json.loads(path.with_suffix(".json").read_text())
    thresholds = {role: float(meta["thresholds"][role]) for role in ROLES}
    band = (float(meta["uncertain_band"][0]), float(meta["uncertain_band"][1]))
    if "model_roles" not in meta:
        raise ValueError(f"{path}: model metadata predates the gated stacker; run `make train-detectors`")
    model_roles = frozenset(meta["model_roles"])
    if not model_roles <= set(ROLES):
        raise ValueError(f"{path}: unknown model roles {sorted(model_roles - set(ROLES))}")
    gate = (float(meta["model_gate"][0]), float(meta["model_gate"][1]))
    return _Model(weights, bias, (calib[0], calib[1], calib[2]), model_roles, gate, thresholds, band)


# Remembered texts: at most 64 Ki characters each and 4 Mi characters together (see ``_lru``).
_CACHE_MAX_CHARS = 1 << 16
_CACHE_TOTAL_CHARS = 1 << 22


@dataclass(frozen=True, slots=True)
class _Tiers:
    """Every matched rule, and the model logit, or None when no role would consult the model (the signature
    score is outside the gate in every context the model is used for): most text never pays for the model."""
    rules: tuple[InjectionRule, ...]
    z: float | None


class InjectionDetector:
    """Scores text for prompt injection. Build once per process and share within one thread (the
    proxy's event loop): the Hyperscan scratch space and the small LRU cache of recent texts are not
    guarded by a lock."""

    def __init__(
        self,
        thresholds: Mapping[str, float] | None = None,
        *,
        model_path: Path | str | None = None,
        uncertain_band: tuple[float, float] | None = None,
        cache_size: int = 2048,
    ) -> None:
        self._model = _load_model(Path(model_path) if model_path else DEFAULT_MODEL_PATH)
        self._signatures = SignatureMatcher()
        merged = dict(self._model.thresholds)
        for role, value in (thresholds or {}).items():
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"threshold for {role!r} must be in [0, 1]")
            merged[role] = float(value)
        self.thresholds: dict[str, float] = merged
        self.band: tuple[float, float] = uncertain_band or self._model.band
        # Chat requests resend the system prompt and the history every turn: remember recent texts.
        self._cache: TextLRU[_Tiers] = TextLRU(cache_size, _CACHE_TOTAL_CHARS, _CACHE_MAX_CHARS)
        # Signature contexts (embedded or not) of the roles that consult the model.
        self._model_contexts = frozenset(role in EMBEDDED_ROLES for role in self._model.model_roles)

    # -- tiers --
    def model_logit(self, norm_text: str) -> float:
        """Tier-2 logit of one normalised text (worst window for long texts)."""
        w, bias = self._model.weights, self._model.bias
        return max(window_logit(w, bias, ids, blocks) for ids, blocks in text_features(norm_text))

    def _tiers(self, text: str) -> _Tiers:
        """Matched rules and model logit: the part of a scan that does not depend on the role."""
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        res = self._tiers_uncached(text)
        self._cache.put(text, res)
        return res

    def _tiers_uncached(self, text: str) -> _Tiers:
        norm = normalize(text)
        decoded = tuple(normalize(d) for d in norm.decoded)
        rules = self._signatures.matched_rules(text, norm, decoded)
        if not rules or not any(self._gated(combine(rules, embedded).score) for embedded in self._model_contexts):
            return _Tiers(rules, None)
        z = self.model_logit(norm.text)
        for d in decoded:
            z = max(z, self.model_logit(d.text))
        return _Tiers(rules, z)

    def _score(self, text: str, role: str) -> tuple[float, float, float, tuple[InjectionRule, ...]]:
        tiers = self._tiers(text)
        hits = combine(tiers.rules, role in EMBEDDED_ROLES)
        c0, c_sig, c_model = self._model.calibration
        x = c0 + c_sig * hits.score
        model = 0.0
        if tiers.z is not None:
            model = _sigmoid(tiers.z)
            if role in self._model.model_roles and self._gated(hits.score):
                x += c_model * min(max(tiers.z, -LOGIT_CLIP), LOGIT_CLIP)
        return _sigmoid(x), hits.score, model, hits.rules

    def _gated(self, signature_score: float) -> bool:
        lo, hi = self._model.gate
        return signature_score > 0.0 and lo <= signature_score < hi

    # -- public API --
    def scan(self, text: str, role: str = "user") -> InjectionResult:
        threshold = self._threshold(role)
        score, sig, model, rules = self._score(text, role)
        return InjectionResult(
            score=score,
            flagged=score >= threshold,
            role=role,
            rule_ids=tuple(r.id for r in rules),
            categories=_categories(rules),
            signature_score=sig,
            model_score=model,
        )

    def scan_messages(self, messages: Iterable[tuple[str, str]]) -> InjectionResult:
        """Scan (role, text) pairs; the result describes the message closest to (or furthest over) its threshold."""
        worst: InjectionResult | None = None
        worst_margin = -math.inf
        rule_ids: dict[str, None] = {}
        for role, text in messages:
            res = self.scan(text, role)
            rule_ids.update(dict.fromkeys(res.rule_ids))
            margin = res.score - self.thresholds[role]
            if margin > worst_margin:
                worst, worst_margin = res, margin
        if worst is None:
            return InjectionResult(0.0, False, "user", (), (), 0.0, 0.0)
        rules = tuple(rule_ids)
        by_id = {r.id: r for r in (*RULES, ENCODED_PAYLOAD_RULE)}
        return InjectionResult(
            score=worst.score,
            flagged=worst.flagged,
            role=worst.role,
            rule_ids=rules,
            categories=_categories([by_id[i] for i in rules]),
            signature_score=worst.signature_score,
            model_score=worst.model_score,
        )

    def uncertain(self, score: float) -> bool:
        """True when ``score`` lies in the band where a remote classifier should be consulted."""
        lo, hi = self.band
        return lo <= score < hi

    def _threshold(self, role: str) -> float:
        try:
            return self.thresholds[role]
        except KeyError:
            raise ValueError(f"unknown role {role!r}; expected one of {ROLES}") from None


def _categories(rules: Iterable[InjectionRule]) -> tuple[str, ...]:
    present = {r.category for r in rules}
    return tuple(c for c in CATEGORIES if c in present)
