"""Train the learned tier of the prompt-injection detector.

    python -m bench.train_injection            # EVAL_DIR overrides /work/shared/eval

Data: the injection-family files of the eval set (``pi_*``, ``benign_*``) plus
``harmful_requests`` as extra *benign* negatives (plain harmful asks contain no
injection; without them the model learns "harmful question" instead of the
jailbreak wrapper around it).

Model: L2-regularised logistic regression over the hashed features of
``detectors.injection.hashed_features`` (TF / sqrt(length)), trained full-batch
with Adam in numpy. Examples are weighted 1/sqrt(group size) so that one
template filled 80 times does not outweigh 80 distinct attacks, and the two
classes carry equal total weight.

Long texts are scored in windows (two 512-byte blocks); a long attack is learnt as a
multiple-instance bag: first from all its windows together, then from the window the
first model scores highest (the one holding the injection).

Validation and calibration (printed, and stored in the metadata json):
* grouped 5-fold cross-validation (folds by the ``group`` field) gives
  out-of-fold logits: the per-role thresholds are set on them (1 % FPR on the
  benign kinds of that role, 0.2 % for system prompts), floored so that one weak
  signature (weight < 0.45) cannot flag a typical benign text on its own;
* leave-one-file-out: each pi_* / benign_* file (one upstream source) is held
  out in turn and scored by a model trained on the others; the held-out recall /
  FPR per file is the number that predicts behaviour on new sources.

Stacker: a three-weight logistic regression maps (signature score, model logit) to
the detector's probability, ``sigmoid(c0 + c_sig * sig + c_model * clip(z) * gate)``.
The gate is on for the roles in ``MODEL_ROLES`` (text the user or the application
wrote) when a signature matched: held out, the model carried over to unseen templates
of known jailbreak families but not to unseen sources, and not to documents (their
logits are no better than chance there), so it is only allowed to tip texts a
signature already found suspicious. The stacker is fitted on the grouped k-fold and the
leave-one-file-out logits pooled (every example twice), so its model weight is what
helps on unseen templates without hurting on unseen sources; thresholds are set on
each benign example's worse held-out score of the two (per benign kind, see
``TARGET_FPR``). The shipped gate is then narrowed to the signature scores where the
model can change a flag at those thresholds (``gate_band``), so the detector skips the
model for almost all text.

Signature scores are taken in the context each record would reach the detector in
(documents and tool results as ``tool`` messages, see ``is_embedded``), as ``bench.eval``
scans them. The model logits do not depend on the rule set: after a rule change,
``--logits-from`` reuses the OOF / LOFO logits of an earlier ``--dump-scores`` run and only
refits the calibration, the thresholds and the final model (under a minute instead of ten).

Outputs ``detectors/data/injection_model.npz`` (weights, bias, stacker ``calibration`` = c0, c_sig, c_model) and
``detectors/data/injection_model.json`` (feature config, date, sources, counts,
thresholds, validation numbers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detectors.injection import (
    DEFAULT_MODEL_PATH,
    HASH_BITS,
    LOGIT_CLIP,
    WINDOW_BYTES,
    WINDOW_STRIDE,
    SignatureMatcher,
    feature_windows,
    text_features,
)
from detectors.normalize import normalize

REPO = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_DIR = REPO.parent / "shared" / "eval"
DIM = 1 << HASH_BITS
L2 = 1e-4
# Per-kind false-positive budget for the user / tool thresholds on held-out scores (the target is 1 %; the
# margin absorbs the difference between development and unseen benign sources).
TARGET_FPR = 0.008
WEAK_RULE = 0.45
WEAK_MARGIN = 0.01  # the floor sits at WEAK_RULE - WEAK_MARGIN, so that a WEAK_RULE rule still flags alone

USER_BENIGN_KINDS = ("user_prompt", "roleplay_prompt", "structured_prompt", "multilingual_user_prompt",
                     "image_prompt", "harmful_request")
TOOL_BENIGN_KINDS = ("document", "tool_output")
SYSTEM_BENIGN_KINDS = ("app_prompt_template", "structured_prompt", "roleplay_prompt")
# Roles whose score may use the model logit (see the module docstring).
MODEL_ROLES = ("system", "user", "assistant")


def is_embedded(kind: str) -> bool:
    """Documents and tool results reach the detector as ``tool`` messages (as in ``bench.eval``)."""
    return kind.startswith("indirect") or kind in TOOL_BENIGN_KINDS


def role_of_kind(kind: str) -> str:
    """The role a record reaches the detector in, as ``bench.eval`` scans it."""
    if is_embedded(kind):
        return "tool"
    return "system" if kind == "app_prompt_template" else "user"


def eval_dir() -> Path:
    return Path(os.environ.get("EVAL_DIR") or DEFAULT_EVAL_DIR)


@dataclass(slots=True)
class Example:
    file: str
    source: str
    group: str
    kind: str
    label: int          # 1 attack, 0 benign (harmful requests count as benign here)
    text: str


def injection_files(root: Path) -> list[Path]:
    files = sorted(root.glob("pi_*.jsonl")) + sorted(root.glob("benign_*.jsonl"))
    if not files:
        raise SystemExit(f"no pi_*/benign_* files in {root}")
    return files


def load_examples(root: Path, with_harmful: bool = True) -> list[Example]:
    out: list[Example] = []
    paths = injection_files(root)
    harmful = root / "harmful_requests.jsonl"
    if with_harmful and harmful.exists():
        paths.append(harmful)
    for path in paths:
        name = path.stem
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                r = json.loads(line)
                if name == "harmful_requests":
                    label, kind = 0, "harmful_request"
                else:
                    label, kind = (1 if r["label"] == "attack" else 0), r.get("kind", "")
                out.append(Example(name, r.get("source", name), r.get("group", ""), kind, label, r["text"]))
    return out


# --- design matrix -----------------------------------------------------------------------------


@dataclass(slots=True)
class Design:
    """Rows of a sparse TF/sqrt(len) matrix stored as flat (row, col, val) arrays, rows contiguous."""
    indptr: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    example: np.ndarray   # example index of each row
    whole: np.ndarray     # True for the all-windows row of a long attack (used before windows are picked)

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1


def _row(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols, counts = np.unique(ids, return_counts=True)
    return cols.astype(np.int32), (counts / math.sqrt(max(ids.size, 1))).astype(np.float32)


def build_design(examples: list[Example], progress: bool = True) -> tuple[Design, np.ndarray]:
    """Featurise every example: one row per scoring window (as at inference), plus for a long attack
    one extra row over all its windows (its injection sits in an unknown window; training starts
    from that row and then picks the window, see ``train``). Also returns each example's
    signature score."""
    matcher = SignatureMatcher()
    cols_l: list[np.ndarray] = []
    vals_l: list[np.ndarray] = []
    ex_l: list[int] = []
    whole_l: list[bool] = []
    sig = np.zeros(len(examples), dtype=np.float64)
    it = _progress(range(len(examples)), "featurise", progress)
    for i in it:
        ex = examples[i]
        norm = normalize(ex.text)
        decoded = tuple(normalize(d) for d in norm.decoded)
        sig[i] = matcher.match(ex.text, norm, decoded, embedded=is_embedded(ex.kind)).score
        windows = feature_windows(norm.text)
        rows = [(ids, False) for ids in windows]
        if ex.label == 1 and len(windows) > 1:
            rows.append((np.concatenate([ids for ids, _ in text_features(norm.text)]), True))
        for ids, whole in rows:
            c, v = _row(ids)
            cols_l.append(c)
            vals_l.append(v)
            ex_l.append(i)
            whole_l.append(whole)
    lengths = np.array([c.size for c in cols_l], dtype=np.int64)
    indptr = np.zeros(len(cols_l) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    design = Design(indptr, np.concatenate(cols_l), np.concatenate(vals_l), np.array(ex_l, dtype=np.int64),
                    np.array(whole_l, dtype=bool))
    return design, sig


def _progress(it, desc: str, enabled: bool):
    if not enabled:
        return it
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    return tqdm(it, desc=desc, leave=False, file=sys.stderr)


def _subset(d: Design, rows: np.ndarray) -> Design:
    starts, ends = d.indptr[rows], d.indptr[rows + 1]
    lengths = ends - starts
    indptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if rows.size else np.zeros(0, np.int64)
    return Design(indptr, d.cols[take], d.vals[take], d.example[rows], d.whole[rows])


# --- logistic regression -----------------------------------------------------------------------


def row_logits(d: Design, w: np.ndarray, b: float) -> np.ndarray:
    contrib = d.vals * w[d.cols]
    sums = np.add.reduceat(contrib, d.indptr[:-1]) if contrib.size else np.zeros(d.n_rows)
    sums[np.diff(d.indptr) == 0] = 0.0
    return sums.astype(np.float64) + b


def fit_logreg(d: Design, y: np.ndarray, weight: np.ndarray, *, l2: float = L2, iters: int = 160,
               lr: float = 0.05, init: tuple[np.ndarray, float] | None = None,
               progress: bool = False) -> tuple[np.ndarray, float]:
    """Weighted, L2-regularised logistic regression with full-batch Adam (deterministic)."""
    w = init[0].copy() if init is not None else np.zeros(DIM, dtype=np.float64)
    b = init[1] if init is not None else 0.0
    m_w = np.zeros_like(w)
    v_w = np.zeros_like(w)
    m_b = v_b = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    wsum = weight.sum()
    row_of_nnz = np.repeat(np.arange(d.n_rows), np.diff(d.indptr))
    for t in _progress(range(1, iters + 1), "fit", progress):
        z = row_logits(d, w, b)
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))
        r = (p - y) * weight / wsum
        g_w = np.bincount(d.cols, weights=d.vals * r[row_of_nnz], minlength=DIM) + l2 * w
        g_b = float(r.sum())
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w * g_w
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b * g_b
        corr1, corr2 = 1 - beta1 ** t, 1 - beta2 ** t
        w -= lr * (m_w / corr1) / (np.sqrt(v_w / corr2) + eps)
        b -= lr * (m_b / corr1) / (math.sqrt(v_b / corr2) + eps)
    return w, b


def example_weights(examples: list[Example]) -> np.ndarray:
    """1/sqrt(group size); inside a file holding both classes, attacks and benign get equal weight
    (so the model cannot learn a source's style instead of the attack); then both classes overall
    get the same total weight."""
    size = Counter((e.file, e.group) for e in examples)
    w = np.array([1.0 / math.sqrt(size[(e.file, e.group)]) for e in examples])
    y = np.array([e.label for e in examples])
    files = np.array([e.file for e in examples])
    for name in set(files.tolist()):
        in_file = files == name
        att, ben = in_file & (y == 1), in_file & (y == 0)
        if att.any() and ben.any():
            target = 0.5 * (w[att].sum() + w[ben].sum())
            w[att] *= target / w[att].sum()
            w[ben] *= target / w[ben].sum()
    for cls in (0, 1):
        mask = y == cls
        if mask.any():
            w[mask] *= 0.5 * len(examples) / w[mask].sum()
    return w


def _fit_rows(d: Design, examples: list[Example], ex_idx: np.ndarray, ew: np.ndarray, rows: np.ndarray,
              **kw) -> tuple[np.ndarray, float]:
    sub = _subset(d, rows)
    pos = {int(e): k for k, e in enumerate(ex_idx)}
    # An example spread over n rows (a long benign text's windows) shares its weight between them.
    nrows = Counter(sub.example.tolist())
    y = np.array([examples[e].label for e in sub.example], dtype=np.float64)
    wt = np.array([ew[pos[int(e)]] / nrows[int(e)] for e in sub.example])
    return fit_logreg(sub, y, wt, **kw)


def train(d: Design, examples: list[Example], ex_idx: np.ndarray, iters: int = 160,
          **kw) -> tuple[np.ndarray, float]:
    """Train on the given examples, as multiple-instance learning for long attacks: first with the
    all-windows row of each long attack, then with the window that model scores highest (the one
    holding the injection), warm-started."""
    in_set = np.isin(d.example, ex_idx)
    labels = np.array([examples[e].label for e in d.example])
    multi = np.zeros(len(examples), dtype=bool)
    multi[d.example[d.whole]] = True
    first = np.flatnonzero(in_set & ((labels == 0) | ~multi[d.example] | d.whole))
    ew = example_weights([examples[i] for i in ex_idx])
    w, b = _fit_rows(d, examples, ex_idx, ew, first, iters=iters, **kw)
    window_rows = np.flatnonzero(in_set & (labels == 1) & multi[d.example] & ~d.whole)
    if window_rows.size == 0:
        return w, b
    z = row_logits(_subset(d, window_rows), w, b)
    best: dict[int, tuple[float, int]] = {}
    for r, e, v in zip(window_rows.tolist(), d.example[window_rows].tolist(), z.tolist()):
        if e not in best or v > best[e][0]:
            best[e] = (v, r)
    picked = np.array(sorted(r for _, r in best.values()), dtype=np.int64)
    second = np.union1d(np.flatnonzero(in_set & ((labels == 0) | ~multi[d.example]) & ~d.whole), picked)
    return _fit_rows(d, examples, ex_idx, ew, second, iters=max(40, iters // 2), init=(w, b), **kw)


def example_logits(d: Design, w: np.ndarray, b: float, ex_idx: np.ndarray) -> np.ndarray:
    """Max window logit for each example in ``ex_idx`` (as the detector scores it)."""
    rows = np.flatnonzero(np.isin(d.example, ex_idx) & ~d.whole)
    sub = _subset(d, rows)
    z = row_logits(sub, w, b)
    best: dict[int, float] = defaultdict(lambda: -math.inf)
    for e, v in zip(sub.example.tolist(), z.tolist()):
        best[e] = max(best[e], v)
    return np.array([best[int(e)] for e in ex_idx])


def fold_of(group: str, k: int) -> int:
    return int(hashlib.sha1(group.encode("utf-8")).hexdigest(), 16) % k


# --- calibration and thresholds ----------------------------------------------------------------


def model_gate(sig: np.ndarray, kinds: np.ndarray, band: tuple[float, float] = (0.0, math.inf)) -> np.ndarray:
    """1.0 where the detector uses the model logit: a signature matched, its score lies in ``band`` and the text
    reaches the detector in one of ``MODEL_ROLES`` (documents and tool results arrive as ``tool``)."""
    roles = np.array([role_of_kind(k) for k in kinds.tolist()])
    inside = (sig > 0.0) & (sig >= band[0]) & (sig < band[1])
    return (inside & np.isin(roles, MODEL_ROLES)).astype(np.float64)


def gate_band(cal: tuple[float, float, float], thresholds: dict[str, float]) -> tuple[float, float]:
    """Signature scores where the (clipped) model logit can change a user or assistant flag: below the band no
    model logit lifts the score to the threshold, from its top up the signatures flag whatever the model says.
    The detector skips the model outside the band; for those roles the flags at the shipped thresholds are the
    same as with the model consulted whenever a signature matched (only scores far from the threshold change a
    little). The system threshold is far stricter (0.2 % FPR), so system prompts lose the model's help above the
    band, which costs nothing on the development data."""
    c0, c_sig, c_model = cal
    if c_sig <= 0:
        return 0.0, math.inf
    logits = [math.log(t / (1.0 - t)) if 0.0 < t < 1.0 else (math.inf if t >= 1.0 else -math.inf)
              for r, t in thresholds.items() if r in ("user", "assistant")]
    reach = abs(c_model) * LOGIT_CLIP
    lower = max(0.0, (min(logits) - c0 - reach) / c_sig)
    upper = (max(logits) - c0 + reach) / c_sig
    return math.floor(lower * 1e4) / 1e4, (math.inf if upper > 1.0 else math.ceil(upper * 1e4) / 1e4)


def stack_features(z: np.ndarray, sig: np.ndarray, gate: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(sig), sig, np.clip(z, -LOGIT_CLIP, LOGIT_CLIP) * gate])


def fit_stacker(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[float, float, float]:
    """Weighted logistic regression (Newton, light L2) on ``stack_features`` rows: (c0, c_sig, c_model)."""
    beta = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -35, 35)))
        g = x.T @ ((p - y) * weight) + 1e-3 * beta
        h = (x * (weight * p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(x.shape[1])
        step = np.linalg.solve(h, g)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(beta[0]), float(beta[1]), float(beta[2])


def calibrated(cal: tuple[float, float, float], z: np.ndarray, sig: np.ndarray, gate: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(stack_features(z, sig, gate) @ np.array(cal), -35, 35)))


def threshold_at_fpr(benign_scores: np.ndarray, max_fpr: float) -> float:
    """Smallest threshold whose false-positive rate on ``benign_scores`` is at most ``max_fpr``."""
    if benign_scores.size == 0:
        return 0.5
    s = np.sort(benign_scores)[::-1]
    allowed = math.floor(max_fpr * s.size)
    # Flag score >= thr; with thr just above s[allowed], at most `allowed` benign scores are flagged.
    return float(min(1.0, np.nextafter(s[allowed], 2.0))) if allowed < s.size else 0.0


def held_out_rates(scores: np.ndarray, y: np.ndarray, kinds: np.ndarray, thresholds: dict[str, float]) -> dict:
    """Recall / FPR with each record judged against its role's threshold (documents and tool output: tool)."""
    thr = np.array([thresholds[role_of_kind(k)] for k in kinds.tolist()])
    flag = scores >= thr
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    return {"recall": float((flag & (y == 1)).sum() / pos) if pos else None,
            "fpr": float((flag & (y == 0)).sum() / neg) if neg else None, "attacks": pos, "benign": neg}


def rates(scores: np.ndarray, y: np.ndarray, thr: float) -> dict[str, float]:
    flag = scores >= thr
    tp = int((flag & (y == 1)).sum())
    fp = int((flag & (y == 0)).sum())
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    return {"recall": tp / pos if pos else float("nan"), "fpr": fp / neg if neg else float("nan"),
            "attacks": pos, "benign": neg}


# --- held-out logits ---------------------------------------------------------------------------


def cross_validated_logits(d: Design, examples: list[Example], folds: int, iters: int, *, lofo: bool,
                           t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Grouped k-fold out-of-fold logits (in-distribution, unseen groups: for the thresholds) and
    leave-one-file-out logits (each file, one upstream source, scored by a model that never saw it:
    for the calibration, so that it trusts the model only as far as the model carries over to unseen
    sources and leans on the signatures for the rest). Without ``lofo`` the second is the first."""
    all_idx = np.arange(len(examples))
    file_arr = np.array([e.file for e in examples])
    fold = np.array([fold_of(f"{e.file}|{e.group}", folds) for e in examples])
    z_oof = np.zeros(len(examples))
    for k in range(folds):
        tr, te = all_idx[fold != k], all_idx[fold == k]
        w, b = train(d, examples, tr, iters=iters)
        z_oof[te] = example_logits(d, w, b, te)
        print(f"fold {k + 1}/{folds} done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    z_lofo = z_oof.copy()
    if lofo:
        for name in sorted(set(file_arr.tolist()) - {"harmful_requests"}):
            tr, te = all_idx[file_arr != name], all_idx[file_arr == name]
            w, b = train(d, examples, tr, iters=iters)
            z_lofo[te] = example_logits(d, w, b, te)
            print(f"held out {name} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    return z_oof, z_lofo


def reuse_logits(path: Path, examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    """OOF / LOFO logits saved by ``--dump-scores``, checked against the examples they belong to."""
    with np.load(path) as z:
        z_oof, z_lofo = np.asarray(z["z_oof"], dtype=np.float64), np.asarray(z["z_lofo"], dtype=np.float64)
        files, y = z["files"], z["y"]
    if (len(files) != len(examples) or files.tolist() != [e.file for e in examples]
            or y.tolist() != [float(e.label) for e in examples]):
        raise SystemExit(f"{path}: logits were computed on other data; rerun without --logits-from")
    return z_oof, z_lofo


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--no-lofo", action="store_true", help="skip leave-one-file-out validation")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--dump-scores", type=Path, default=None, help="save OOF / LOFO logits for analysis")
    ap.add_argument("--logits-from", type=Path, default=None,
                    help="reuse the OOF / LOFO logits of an earlier --dump-scores run (same data, same features): "
                         "the model logits do not depend on the rule set, so a rule change needs only the "
                         "calibration, thresholds and final fit redone")
    args = ap.parse_args(argv)
    root = args.eval_dir or eval_dir()
    progress = not args.quiet
    t0 = time.perf_counter()

    examples = load_examples(root)
    y_ex = np.array([e.label for e in examples], dtype=np.float64)
    design, sig = build_design(examples, progress)
    print(f"{len(examples)} examples ({int(y_ex.sum())} attacks), {design.n_rows} rows, "
          f"{design.cols.size} non-zeros, featurised in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    all_idx = np.arange(len(examples))

    kinds = np.array([e.kind for e in examples])
    file_arr = np.array([e.file for e in examples])
    benign = y_ex == 0

    if args.logits_from:
        z_oof, z_lofo = reuse_logits(args.logits_from, examples)
        lofo_done = bool(np.any(z_lofo != z_oof))
        print(f"reused OOF / LOFO logits from {args.logits_from}", file=sys.stderr)
    else:
        z_oof, z_lofo = cross_validated_logits(design, examples, args.folds, args.iters,
                                               lofo=not args.no_lofo, t0=t0)
        lofo_done = not args.no_lofo
    ew = example_weights(examples)
    gate = model_gate(sig, kinds)
    if lofo_done:
        x = np.vstack([stack_features(z_oof, sig, gate), stack_features(z_lofo, sig, gate)])
        cal = fit_stacker(x, np.concatenate([y_ex, y_ex]), np.concatenate([ew, ew]))
    else:
        cal = fit_stacker(stack_features(z_oof, sig, gate), y_ex, ew)
    s_oof = calibrated(cal, z_oof, sig, gate)
    s_lofo = calibrated(cal, z_lofo, sig, gate)
    # A benign text counts at the worse of its two held-out scores.
    s_worst = np.maximum(s_oof, s_lofo)
    if args.dump_scores:
        np.savez(args.dump_scores, z_oof=z_oof, z_lofo=z_lofo, sig=sig, y=y_ex, kinds=kinds, files=file_arr)

    def threshold_for(kind_list: tuple[str, ...], max_fpr: float) -> float:
        """Strictest of the per-kind thresholds: every benign kind of the role (role-play prompts, the classic
        trap, included) stays within ``max_fpr`` on its own, not only the pool. Kinds too small to measure
        ``max_fpr`` on (fewer than 1 / max_fpr texts) only count in the pool."""
        pool = s_worst[benign & np.isin(kinds, kind_list)]
        thr = threshold_at_fpr(pool, max_fpr)
        for k in kind_list:
            scores = s_worst[benign & (kinds == k)]
            if scores.size * max_fpr >= 1:
                thr = max(thr, threshold_at_fpr(scores, max_fpr))
        return thr

    thresholds = {
        "user": threshold_for(USER_BENIGN_KINDS, TARGET_FPR),
        "tool": threshold_for(TOOL_BENIGN_KINDS, TARGET_FPR),
        "system": threshold_for(SYSTEM_BENIGN_KINDS, 0.002),
    }
    # Floor: one weak signature (weight below WEAK_RULE) must not flag a typical benign text alone; a rule of
    # weight WEAK_RULE or more may.
    for role, kind_list in (("user", USER_BENIGN_KINDS), ("tool", TOOL_BENIGN_KINDS), ("system", SYSTEM_BENIGN_KINDS)):
        typical_z = float(np.median(z_oof[benign & np.isin(kinds, kind_list)]))
        gated = np.array([1.0 if role in MODEL_ROLES else 0.0])
        floor = float(calibrated(cal, np.array([typical_z]), np.array([WEAK_RULE - WEAK_MARGIN]), gated)[0])
        thresholds[role] = max(thresholds[role], floor)
    thresholds["assistant"] = max(thresholds["user"], thresholds["tool"])
    thresholds = {k: math.ceil(v * 1e4) / 1e4 for k, v in thresholds.items()}
    all_benign = s_worst[benign]
    # Text without any signature scores sigmoid(c0): it must stay below the band, or every ordinary message would be
    # sent to the remote classifier.
    no_signal = 1.0 / (1.0 + math.exp(-cal[0]))
    band_low = math.ceil(max(float(min(thresholds["user"], np.quantile(all_benign, 0.95))), no_signal) * 1e4) / 1e4
    if band_low <= no_signal:
        band_low += 1e-4
    band = (round(band_low, 4),
            round(float(max(thresholds["user"], thresholds["tool"], np.quantile(all_benign, 0.999))), 4))

    # The shipped gate covers only the signature scores where the model can change a flag; report with it.
    band_lo, band_hi = gate_band(cal, thresholds)
    shipped_gate = model_gate(sig, kinds, (band_lo, band_hi))
    s_oof = calibrated(cal, z_oof, sig, shipped_gate)
    s_lofo = calibrated(cal, z_lofo, sig, shipped_gate)

    def role_thr(k: str) -> float:
        return thresholds[role_of_kind(k)]

    oof_report = {
        "stacked_scores": "grouped k-fold model logits (unseen templates)",
        "role_thresholds": held_out_rates(s_oof, y_ex, kinds, thresholds),
        "by_kind": {k: rates(s_oof[kinds == k], y_ex[kinds == k], role_thr(k)) for k in sorted(set(kinds.tolist()))},
    }
    print(f"grouped {args.folds}-fold OOF, role thresholds {thresholds}: {oof_report['role_thresholds']}",
          file=sys.stderr)
    lofo: dict[str, dict[str, float]] = {}
    if lofo_done:
        for name in sorted(set(file_arr.tolist()) - {"harmful_requests"}):
            m = file_arr == name
            lofo[name] = held_out_rates(s_lofo[m], y_ex[m], kinds[m], thresholds)
            print(f"held out {name}: {lofo[name]}", file=sys.stderr)

    # Final model on everything.
    w, b = train(design, examples, all_idx, iters=args.iters)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, weights=w.astype(np.float32), bias=np.float64(b),
                        calibration=np.array(cal, dtype=np.float64))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"attack": 0, "benign": 0})
    for e in examples:
        counts[f"{e.file}: {e.source}"]["attack" if e.label else "benign"] += 1
    meta = {
        "model": "logistic regression over hashed features",
        "features": {
            "normalisation": "detectors.normalize.normalize",
            "byte_ngrams": [3, 4, 5], "word_ngrams": [1, 2], "hash_bits": HASH_BITS,
            "hash": "polynomial rolling hash mod 2**32 (FNV-32 prime), multiply-shift to buckets",
            "value": "term count / sqrt(number of feature occurrences)",
            "window_bytes": WINDOW_BYTES, "window_stride": WINDOW_STRIDE,
        },
        "training": {
            "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "deterministic": "no random state: zero init, full batch, folds by sha1 of group", "optimizer": "full-batch Adam", "iterations": args.iters, "l2": L2,
            "long_attacks": "multiple-instance: all-windows row first, then the highest-scoring window",
            "example_weight": "1/sqrt(group size), classes balanced",
            "harmful_requests": "used as extra benign negatives",
            "eval_dir": str(root),
        },
        "sources": dict(sorted(counts.items())),
        "calibration": {"intercept": cal[0], "signature_score": cal[1], "model_logit": cal[2],
                        "model_logit_clip": LOGIT_CLIP,
                        "model_gate_meaning": "model logit counts only for model_roles, and only while the signature "
                                              "score is in model_gate [lo, hi)",
                        "fitted_on": ("grouped k-fold and leave-one-file-out logits, pooled" if lofo_done
                                      else "grouped k-fold logits")},
        "model_roles": list(MODEL_ROLES),
        "model_gate": [band_lo, band_hi if math.isfinite(band_hi) else 1.01],
        "thresholds": thresholds,
        "uncertain_band": list(band),
        "validation": {"grouped_kfold": {"folds": args.folds, **oof_report}, "leave_one_file_out": lofo},
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json').name}; thresholds {thresholds}; "
          f"total {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
