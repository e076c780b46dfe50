"""Evaluation of the PII and secrets detectors on the development data.

``evaluate_pii(eval_dir, progress)`` scores :class:`detectors.pii.PiiDetector` on the
``pii_*`` files by span overlap, per dataset type, next to plain Presidio
(``AnalyzerEngine`` on the NoOp NLP engine) with the same entities and threshold,
checks that both give identical results on every text, and times both (on the PII
texts and on clean prompts).

``evaluate_secrets(eval_dir, benign_texts, progress)`` scores
:class:`detectors.secrets.SecretsDetector` on the ``secrets_*`` files: recall on
``secret`` records (any finding, as the data sets define it, and
``recall_credentials_only``: findings of kind "credential", without the infrastructure
identifiers such as ARNs and bucket endpoints that the pipeline only flags), false
positives (any finding) on ``negative`` near-misses and on ordinary benign prompts, per
file and per dataset type, and the scan cost.

Both are deterministic (no sampling: the whole PII set runs in well under a minute
here) and print tqdm progress bars when ``progress`` is true.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from bench.eval import LATENCY_PASSES
from detectors.pii import DEFAULT_ENTITIES, PiiDetector, presidio_engine
from detectors.secrets import SecretsDetector

__all__ = ["DATASET_TO_PRESIDIO", "NER_ONLY_TYPES", "evaluate_pii", "evaluate_secrets"]

#: Dataset (presidio-research) type -> the Presidio pattern entity that covers it.
DATASET_TO_PRESIDIO: dict[str, str] = {
    "CREDIT_CARD": "CREDIT_CARD",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "DATE_TIME": "DATE_TIME",
    "DOMAIN_NAME": "URL",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
}
#: Dataset types that need a named-entity model (none is installed): reported with recall 0.
NER_ONLY_TYPES = frozenset(
    {
        "PERSON",
        "ADDRESS",
        "STREET_ADDRESS",
        "LOCATION",
        "GPE",
        "ORGANIZATION",
        "TITLE",
        "AGE",
        "NRP",
        "ZIP_CODE",
        "PREFIX",
    }
)
_PII_FILES = ("pii_presidio_synth_v2.jsonl", "pii_presidio_generated_large.jsonl")
_CLEAN_FILES = (
    ("benign_self_instruct.jsonl", None),
    ("benign_awesome_chatgpt_prompts.jsonl", 400),
)
_SECRETS_GLOB = "secrets_*.jsonl"

Span = tuple[int, int, str]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _prf(
    tp_gold: int, support: int, tp_pred: int, predicted: int
) -> dict[str, float | int]:
    recall = tp_gold / support if support else float("nan")
    precision = tp_pred / predicted if predicted else float("nan")
    if support and predicted and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    else:
        f1 = float("nan")
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "predicted": predicted,
    }


def _score_by_type(
    gold: Sequence[list[Span]], predicted: Sequence[list[Span]]
) -> dict[str, dict[str, Any]]:
    """Span-overlap precision/recall per dataset type (predictions are mapped back to dataset types)."""
    presidio_to_dataset: dict[str, list[str]] = defaultdict(list)
    for d, p in DATASET_TO_PRESIDIO.items():
        presidio_to_dataset[p].append(d)
    tp_gold: dict[str, int] = defaultdict(int)
    support: dict[str, int] = defaultdict(int)
    tp_pred: dict[str, int] = defaultdict(int)
    n_pred: dict[str, int] = defaultdict(int)
    for g_spans, p_spans in zip(gold, predicted):
        for gs, ge, gt in g_spans:
            support[gt] += 1
            want = DATASET_TO_PRESIDIO.get(gt)
            if want and any(
                pt == want and _overlaps((gs, ge), (ps, pe)) for ps, pe, pt in p_spans
            ):
                tp_gold[gt] += 1
        for ps, pe, pt in p_spans:
            key = presidio_to_dataset.get(pt, [pt])[0]
            n_pred[key] += 1
            accepted = presidio_to_dataset.get(pt, [])
            if any(
                gt in accepted and _overlaps((gs, ge), (ps, pe))
                for gs, ge, gt in g_spans
            ):
                tp_pred[key] += 1
    out: dict[str, dict[str, Any]] = {}
    for t in sorted(set(support) | set(n_pred)):
        row: dict[str, Any] = _prf(tp_gold[t], support[t], tp_pred[t], n_pred[t])
        row["needs_ner"] = t in NER_ONLY_TYPES
        if t not in DATASET_TO_PRESIDIO and t not in NER_ONLY_TYPES and support[t] == 0:
            row["note"] = (
                "Presidio type with no dataset label (every prediction counts as a false positive)"
            )
        out[t] = row
    return out


def _timed(fn: Callable[[str], Any], texts: Iterable[str]) -> tuple[list[Any], float]:
    results = []
    t0 = time.perf_counter()
    for text in texts:
        results.append(fn(text))
    return results, time.perf_counter() - t0


def _kb(texts: Iterable[str]) -> float:
    return sum(len(t.encode("utf-8")) for t in texts) / 1024


def evaluate_pii(eval_dir: Path, progress: bool) -> dict[str, Any]:
    """Per-type span-overlap scores, equivalence with plain Presidio, speed-ups and µs/KB."""
    eval_dir = Path(eval_dir)
    records = [r for name in _PII_FILES for r in _read_jsonl(eval_dir / name)]
    texts = [r["text"] for r in records]
    gold = [[(s["start"], s["end"], s["type"]) for s in r["spans"]] for r in records]
    clean: list[str] = []
    for name, limit in _CLEAN_FILES:
        rows = _read_jsonl(eval_dir / name)
        clean.extend(r["text"] for r in (rows if limit is None else rows[:limit]))

    detector = PiiDetector(cache_size=0)  # repeated passes must not hit a cache
    engine = presidio_engine()
    entities = list(DEFAULT_ENTITIES)
    threshold = detector.score_threshold

    def ours(text: str) -> list[Span]:
        return [(f.start, f.end, f.entity_type) for f in detector.scan(text)]

    def theirs(text: str) -> list[Span]:
        found = engine.analyze(
            text, language="en", entities=entities, score_threshold=threshold
        )
        return [(r.start, r.end, r.entity_type) for r in found]

    # Warm Presidio's lazily loaded state, as the detector does in its constructor.
    theirs(texts[0])
    bar = (
        (lambda it, desc: tqdm(it, desc=desc, unit="text", leave=False))
        if progress
        else (lambda it, desc: it)
    )
    our_spans, our_t = _timed(ours, bar(texts, "pii: ours"))
    ref_spans, ref_t = _timed(theirs, bar(texts, "pii: presidio"))
    # Clean-text cost: the fastest of LATENCY_PASSES passes (ours) and of two (Presidio, ~50x slower): the
    # machine is shared.
    our_clean_t = min(_timed(ours, bar(clean, "pii clean: ours"))[1] for _ in range(LATENCY_PASSES))
    ref_clean_t = min(
        _timed(theirs, bar(clean, "pii clean: presidio"))[1] for _ in range(2)
    )
    identical = sum(sorted(a) == sorted(b) for a, b in zip(our_spans, ref_spans))
    clean_kb = _kb(clean)
    us_per_kb = our_clean_t * 1e6 / clean_kb
    return {
        "by_type": _score_by_type(gold, our_spans),
        "presidio_by_type": _score_by_type(gold, ref_spans),
        "identical_to_presidio": identical / len(texts),
        "speedup_clean": ref_clean_t / our_clean_t,
        "speedup_all": ref_t / our_t,
        "us_per_kb": us_per_kb,
        "us_per_kb_pii_texts": our_t * 1e6 / _kb(texts),
        "latency_us_per_kb": us_per_kb,
        "texts": len(texts),
        "clean_texts": len(clean),
        "entities": entities,
        "score_threshold": threshold,
        "notes": (
            "Presidio with the NoOp NLP engine (no spaCy model installed): PERSON, ADDRESS/STREET_ADDRESS, "
            "LOCATION/GPE, ORGANIZATION, TITLE, AGE, NRP, ZIP_CODE and PREFIX need NER and score 0 recall here. "
            "Clean text = benign_self_instruct plus the first 400 benign_awesome_chatgpt_prompts."
        ),
    }


def evaluate_secrets(
    eval_dir: Path, benign_texts: list[str], progress: bool
) -> dict[str, Any]:
    """Recall on secrets, false-positive rates on near-misses and benign prompts, per file/type, µs/KB."""
    eval_dir = Path(eval_dir)
    detector = SecretsDetector()
    bar = (
        (lambda it, desc: tqdm(it, desc=desc, unit="text", leave=False))
        if progress
        else (lambda it, desc: it)
    )
    by_file: dict[str, dict[str, Any]] = {}
    by_type_hits: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    n_secret = n_secret_hit = n_credential_hit = n_negative = n_negative_hit = 0
    span_support = span_hit = 0
    for path in sorted(eval_dir.glob(_SECRETS_GLOB)):
        rows = _read_jsonl(path)
        f_secret = f_hit = f_cred_hit = f_neg = f_neg_hit = 0
        for r in bar(rows, f"secrets: {path.stem}"):
            found = detector.scan(r["text"])
            if r["label"] == "secret":
                credential = any(f.kind == "credential" for f in found)
                f_secret += 1
                f_hit += bool(found)
                f_cred_hit += credential
                stats = by_type_hits[str(r.get("secret_type") or path.stem)]
                stats[0] += 1
                stats[1] += bool(found)
                stats[2] += credential
                for s in r.get("spans") or ():
                    span_support += 1
                    span_hit += any(
                        _overlaps((s["start"], s["end"]), (f.start, f.end))
                        for f in found
                    )
            elif r["label"] == "negative":
                f_neg += 1
                f_neg_hit += bool(found)
        by_file[path.stem] = {
            "recall": f_hit / f_secret if f_secret else float("nan"),
            "recall_credentials_only": f_cred_hit / f_secret if f_secret else float("nan"),
            "fpr_negative": f_neg_hit / f_neg if f_neg else float("nan"),
            "secrets": f_secret,
            "negatives": f_neg,
        }
        n_secret += f_secret
        n_secret_hit += f_hit
        n_credential_hit += f_cred_hit
        n_negative += f_neg
        n_negative_hit += f_neg_hit
    benign_flags, benign_t = _timed(
        lambda t: bool(detector.scan(t)), bar(benign_texts, "secrets: benign")
    )
    # The fastest of LATENCY_PASSES passes: the machine is shared.
    benign_t = min(
        benign_t, *(_timed(detector.scan, benign_texts)[1] for _ in range(LATENCY_PASSES - 1))
    )
    us_per_kb = benign_t * 1e6 / _kb(benign_texts) if benign_texts else float("nan")
    return {
        "recall": n_secret_hit / n_secret if n_secret else float("nan"),
        "recall_credentials_only": n_credential_hit / n_secret if n_secret else float("nan"),
        "span_recall": span_hit / span_support if span_support else float("nan"),
        "fpr_negative": n_negative_hit / n_negative if n_negative else float("nan"),
        "fpr_benign": sum(benign_flags) / len(benign_flags)
        if benign_flags
        else float("nan"),
        "by_file": by_file,
        "by_type": {
            t: {"support": s, "recall": h / s, "recall_credentials_only": c / s}
            for t, (s, h, c) in sorted(by_type_hits.items())
        },
        "us_per_kb": us_per_kb,
        "latency_us_per_kb": us_per_kb,
        "secrets": n_secret,
        "negatives": n_negative,
        "benign": len(benign_texts),
        "notes": (
            "recall: a secret record counts as found when the detector reports anything in it; "
            "recall_credentials_only: only findings of kind credential count (infrastructure identifiers such as "
            "ARNs, bucket endpoints and store domains, which the pipeline flags by default, do not); span_recall: "
            "labelled spans overlapped by a finding (noseyparker labels the first capture group, often a "
            "user name or the key name, so span_recall understates detection)."
        ),
    }
