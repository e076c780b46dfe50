"""Detector evaluation: ``make eval`` / ``python -m bench.eval``.

Reads the labelled data in EVAL_DIR (default ``../shared/eval`` beside the repo),
scores the injection detector here and the PII / secrets detectors through
``bench.eval_pii_secrets``, and writes ``bench/results/eval.json`` (stable shape,
below) and a readable ``bench/results/eval.md`` (also printed).

    {"injection": {"overall": {recall, fpr, precision, f1}, "by_file", "by_kind",
                   "evasion": {recall, fpr}, "curve", "thresholds", "harmful_requests"},
     "pii": {...}, "secrets": {...},
     "latency_us_per_kb": {"injection", "pii", "secrets"}}

Injection: every ``pi_*`` / ``benign_*`` record is scanned with the role it would
carry in a real request (documents and tool results as ``tool``, app prompt
templates as ``system``, everything else as ``user``) and flagged against that
role's threshold. ``harmful_requests`` (plain harmful asks, no injection) are
reported apart: their flag rate is a false-positive rate for this detector.
Evasion: each record is rewritten with one character-level evasion (zero-width
insertion, homoglyph swaps, Unicode tag characters, letter spacing; round-robin,
fixed seed) and scanned again. The shipped model was trained on these files, so
the numbers here are in-sample; the unseen-source numbers are the
leave-one-file-out results stored by ``bench.train_injection`` and shown in the
report.

PII / secrets sections come from ``evaluate_pii(eval_dir, progress)`` and
``evaluate_secrets(eval_dir, benign_texts, progress)``; a ``latency_us_per_kb``
key in their result moves to the top-level latency table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors.injection import DEFAULT_MODEL_PATH, InjectionDetector

REPO = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_DIR = REPO.parent / "shared" / "eval"
RESULTS_DIR = REPO / "bench" / "results"
SECTIONS = ("injection", "pii", "secrets")
SEED = 1337
# Cost: the fastest of this many passes (a shared VM slows single passes by tens of percent in bursts).
LATENCY_PASSES = 10

TOOL_KINDS = frozenset({"indirect", "indirect_tool_output", "document", "tool_output"})
SYSTEM_KINDS = frozenset({"app_prompt_template"})


def role_for_kind(kind: str) -> str:
    if kind in TOOL_KINDS:
        return "tool"
    if kind in SYSTEM_KINDS:
        return "system"
    return "user"


@dataclass(slots=True)
class Record:
    file: str
    kind: str
    label: int
    text: str


def _read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def load_injection_records(eval_dir: Path) -> tuple[list[Record], list[Record]]:
    """(pi_* + benign_* records, harmful_requests records)."""
    main: list[Record] = []
    for path in sorted(eval_dir.glob("pi_*.jsonl")) + sorted(eval_dir.glob("benign_*.jsonl")):
        for r in _read_jsonl(path):
            main.append(Record(path.stem, r.get("kind", ""), 1 if r["label"] == "attack" else 0, r["text"]))
    harmful_path = eval_dir / "harmful_requests.jsonl"
    harmful = [Record("harmful_requests", "harmful_request", 0, r["text"])
               for r in _read_jsonl(harmful_path)] if harmful_path.exists() else []
    return main, harmful


# --- evasions ----------------------------------------------------------------------------------

_LOOKALIKE = {"a": "а", "c": "с", "e": "е", "i": "і", "j": "ј", "o": "о", "p": "р", "s": "ѕ", "x": "х",
              "y": "у", "A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "K": "К", "M": "М", "O": "О",
              "P": "Р", "T": "Т", "X": "Х"}
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")


def _words(text: str) -> list[str]:
    return text.split(" ")


def evade_zero_width(text: str, rng: random.Random) -> str:
    out = []
    for ch in text:
        out.append(ch)
        if ch.isalpha() and rng.random() < 0.3:
            out.append(rng.choice(_ZERO_WIDTH))
    return "".join(out)


def evade_homoglyphs(text: str, rng: random.Random) -> str:
    return "".join(_LOOKALIKE[ch] if ch in _LOOKALIKE and rng.random() < 0.4 else ch for ch in text)


def evade_tag_chars(text: str, rng: random.Random) -> str:
    out = []
    for ch in text:
        out.append(ch)
        if ch.isalpha() and rng.random() < 0.25:
            out.append(chr(0xE0020 + rng.randrange(0x5F)))
    return "".join(out)


def evade_letter_spacing(text: str, rng: random.Random) -> str:
    out = []
    for word in _words(text):
        if len(word) >= 4 and word.isalpha() and rng.random() < 0.3:
            word = rng.choice((" ", ".", "-")).join(word)
        out.append(word)
    return " ".join(out)


EVASIONS: tuple[tuple[str, Callable[[str, random.Random], str]], ...] = (
    ("zero_width", evade_zero_width),
    ("homoglyph", evade_homoglyphs),
    ("tag_chars", evade_tag_chars),
    ("letter_spacing", evade_letter_spacing),
)


# --- metrics -----------------------------------------------------------------------------------


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def confusion(flags: list[bool], labels: list[int]) -> dict[str, Any]:
    tp = sum(1 for f, y in zip(flags, labels) if f and y)
    fp = sum(1 for f, y in zip(flags, labels) if f and not y)
    pos = sum(labels)
    neg = len(labels) - pos
    recall = _ratio(tp, pos)
    precision = _ratio(tp, tp + fp)
    f1 = (round(2 * precision * recall / (precision + recall), 4)
          if recall is not None and precision is not None and precision + recall > 0 else None)
    return {"recall": recall, "fpr": _ratio(fp, neg), "precision": precision, "f1": f1,
            "attacks": pos, "benign": neg, "tp": tp, "fp": fp}


def _progress(it, desc: str, enabled: bool, total: int | None = None):
    if not enabled:
        return it
    from tqdm import tqdm
    return tqdm(it, desc=desc, total=total, leave=False, file=sys.stderr)


def evaluate_injection(eval_dir: Path, progress: bool = True,
                       detector: InjectionDetector | None = None) -> tuple[dict[str, Any], float]:
    """Injection section and its measured cost in µs per KB of scanned text."""
    det = detector or InjectionDetector(cache_size=0)
    records, harmful = load_injection_records(eval_dir)
    if not records:
        raise SystemExit(f"no pi_*/benign_* files in {eval_dir}")
    scores: list[float] = []
    flags: list[bool] = []
    for rec in _progress(records, "injection", progress):
        res = det.scan(rec.text, role_for_kind(rec.kind))
        scores.append(res.score)
        flags.append(res.flagged)
    labels = [r.label for r in records]

    by_file: dict[str, dict[str, Any]] = {}
    by_kind: dict[str, dict[str, Any]] = {}
    for key_of, table in ((lambda r: r.file, by_file), (lambda r: r.kind, by_kind)):
        idx: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(records):
            idx[key_of(r)].append(i)
        for key in sorted(idx):
            c = confusion([flags[i] for i in idx[key]], [labels[i] for i in idx[key]])
            table[key] = {"n": len(idx[key]), "recall": c["recall"], "fpr": c["fpr"],
                          "attacks": c["attacks"], "benign": c["benign"]}

    rng = random.Random(SEED)
    ev_flags: list[bool] = []
    ev_by_technique: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(_progress(records, "evasion", progress)):
        name, fn = EVASIONS[i % len(EVASIONS)]
        ev_flags.append(det.scan(fn(rec.text, rng), role_for_kind(rec.kind)).flagged)
        ev_by_technique[name].append(i)
    ev = confusion(ev_flags, labels)
    evasion = {"recall": ev["recall"], "fpr": ev["fpr"],
               "plain_recall_same_records": confusion(flags, labels)["recall"],
               "by_technique": {name: {"recall": confusion([ev_flags[i] for i in ix], [labels[i] for i in ix])["recall"],
                                       "plain_recall": confusion([flags[i] for i in ix], [labels[i] for i in ix])["recall"],
                                       "fpr": confusion([ev_flags[i] for i in ix], [labels[i] for i in ix])["fpr"]}
                                for name, ix in sorted(ev_by_technique.items())}}

    curve = []
    for thr in sorted({round(0.05 * k, 2) for k in range(1, 20)} | {round(v, 4) for v in det.thresholds.values()}):
        c = confusion([s >= thr for s in scores], labels)
        curve.append({"threshold": thr, "recall": c["recall"], "fpr": c["fpr"], "precision": c["precision"]})

    h_flags = []
    for rec in _progress(harmful, "harmful", progress):
        h_flags.append(det.scan(rec.text, "user").flagged)
    harmful_report = {"n": len(harmful), "flagged": sum(h_flags), "flag_rate": _ratio(sum(h_flags), len(harmful)),
                      "note": "plain harmful asks without injection; a flag here is a false positive"}

    overall = confusion(flags, labels)
    section = {
        "overall": {k: overall[k] for k in ("recall", "fpr", "precision", "f1")},
        "by_file": by_file,
        "by_kind": by_kind,
        "evasion": evasion,
        "curve": curve,
        "thresholds": dict(det.thresholds),
        "harmful_requests": harmful_report,
    }
    return section, measure_latency(det, [r.text for r in records])


def measure_latency(det: InjectionDetector, texts: list[str], sample: int = 400, repeats: int = LATENCY_PASSES) -> float:
    """µs per KB of ``InjectionDetector.scan`` over an evenly spaced sample; best of ``repeats`` passes
    (the machine is shared, the minimum is the least disturbed measurement)."""
    step = max(1, len(texts) // sample)
    chosen = texts[::step]
    kb = sum(len(t.encode("utf-8", "surrogatepass")) for t in chosen) / 1024
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for t in chosen:
            det.scan(t)
        best = min(best, time.perf_counter() - t0)
    return best * 1e6 / kb if kb else 0.0


def _import_pii_secrets():
    try:
        return importlib.import_module("bench.eval_pii_secrets")
    except ModuleNotFoundError as exc:
        if exc.name not in ("bench.eval_pii_secrets",):
            raise
        raise SystemExit("bench/eval_pii_secrets.py is not there yet (owned by the PII/secrets detectors); "
                         "run with --sections injection meanwhile") from None


def benign_texts(eval_dir: Path) -> list[str]:
    records, _ = load_injection_records(eval_dir)
    return [r.text for r in records if r.label == 0]


def run_eval(eval_dir: Path, sections: Iterable[str] = SECTIONS, progress: bool = True) -> dict[str, Any]:
    sections = tuple(sections)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections: {sorted(unknown)}")
    result: dict[str, Any] = {}
    latency: dict[str, float | None] = {"injection": None, "pii": None, "secrets": None}
    if "injection" in sections:
        result["injection"], latency["injection"] = evaluate_injection(eval_dir, progress)
    if "pii" in sections or "secrets" in sections:
        mod = _import_pii_secrets()
        if "pii" in sections:
            result["pii"] = mod.evaluate_pii(eval_dir, progress)
            latency["pii"] = result["pii"].pop("latency_us_per_kb", None)
        if "secrets" in sections:
            result["secrets"] = mod.evaluate_secrets(eval_dir, benign_texts(eval_dir), progress)
            latency["secrets"] = result["secrets"].pop("latency_us_per_kb", None)
    result["latency_us_per_kb"] = {k: (round(v, 2) if isinstance(v, (int, float)) else v) for k, v in latency.items()}
    return result


# --- report ------------------------------------------------------------------------------------


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4g}"
    return "-" if v is None else str(v)


def _render_section(name: str, sec: dict[str, Any]) -> list[str]:
    """Scalars as a list, ``by_*`` tables of per-key metrics as markdown tables."""
    lines = [f"## {name}\n"]
    scalars = [(k, v) for k, v in sec.items() if not isinstance(v, (dict, list))]
    lines += [f"- {k}: {_fmt(v)}" for k, v in scalars]
    for key, table in sec.items():
        if not (isinstance(table, dict) and table and all(isinstance(v, dict) for v in table.values())):
            continue
        cols = sorted({c for row in table.values() for c, v in row.items() if not isinstance(v, (dict, list))})
        lines += ["", f"{key}:", "", "| " + " | ".join([name, *cols]) + " |", "|" + "---|" * (len(cols) + 1)]
        for rk, row in table.items():
            lines.append("| " + " | ".join([str(rk), *(_fmt(row.get(c)) for c in cols)]) + " |")
    lines.append("")
    return lines


def _json_safe(obj: Any) -> Any:
    """NaN / inf become null so that eval.json is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def render_markdown(result: dict[str, Any], eval_dir: Path) -> str:
    lines = [f"# Detector evaluation\n\nData: `{eval_dir}`\n"]
    inj = result.get("injection")
    if inj:
        o = inj["overall"]
        lines += ["## Prompt injection (in-sample: the shipped model was trained on these files)\n",
                  f"Overall: recall {_pct(o['recall'])}, FPR {_pct(o['fpr'])}, precision {_pct(o['precision'])}, "
                  f"F1 {o['f1']}; evasion recall {_pct(inj['evasion']['recall'])} / FPR {_pct(inj['evasion']['fpr'])}; "
                  f"harmful requests flagged {_pct(inj['harmful_requests']['flag_rate'])}.\n",
                  "Thresholds: " + ", ".join(f"{k} {v}" for k, v in inj["thresholds"].items()) + "\n",
                  "| file | n | attacks | recall | benign | FPR |", "|---|---|---|---|---|---|"]
        for name, r in inj["by_file"].items():
            lines.append(f"| {name} | {r['n']} | {r['attacks']} | {_pct(r['recall'])} | {r['benign']} | {_pct(r['fpr'])} |")
        lines += ["", "| kind | n | recall | FPR |", "|---|---|---|---|"]
        for name, r in inj["by_kind"].items():
            lines.append(f"| {name} | {r['n']} | {_pct(r['recall'])} | {_pct(r['fpr'])} |")
        lines += ["", "| evasion | recall | plain recall | FPR |", "|---|---|---|---|"]
        for name, r in inj["evasion"]["by_technique"].items():
            lines.append(f"| {name} | {_pct(r['recall'])} | {_pct(r['plain_recall'])} | {_pct(r['fpr'])} |")
        meta_path = DEFAULT_MODEL_PATH.with_suffix(".json")
        if meta_path.exists():
            lofo = json.loads(meta_path.read_text()).get("validation", {}).get("leave_one_file_out", {})
            if lofo:
                lines += ["", "Unseen-source estimate (leave-one-file-out, from training):", "",
                          "| held-out file | attacks | recall | benign | FPR |", "|---|---|---|---|---|"]
                for name, r in lofo.items():
                    lines.append(f"| {name} | {r['attacks']} | {_pct(r['recall'])} | {r['benign']} | {_pct(r['fpr'])} |")
        lines.append("")
    for name in ("pii", "secrets"):
        if name in result:
            lines += _render_section(name, result[name])
    lat = result["latency_us_per_kb"]
    lines += [f"## Cost (µs per KB of text, single thread, fastest of {LATENCY_PASSES} passes, caches off; injection: "
              "an evenly spaced sample of up to 400 texts; PII: clean text; secrets: benign prompts)\n", "| detector | µs/KB |", "|---|---|"]
    lines += [f"| {k} | {v if v is not None else '-'} |" for k, v in lat.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate Casemate's detectors on labelled data.")
    ap.add_argument("--eval-dir", type=Path, default=None, help="default: $EVAL_DIR or ../shared/eval")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ",".join(SECTIONS))
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    eval_dir = args.eval_dir or Path(os.environ.get("EVAL_DIR") or DEFAULT_EVAL_DIR)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    t0 = time.perf_counter()
    result = run_eval(eval_dir, sections, progress=not args.no_progress)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "eval.json").write_text(json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n")
    md = render_markdown(result, eval_dir)
    (args.out_dir / "eval.md").write_text(md)
    print(md)
    print(f"wrote {args.out_dir / 'eval.json'} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
