"""Classification metrics as the papers report them, computed with scikit-learn.

Strict and tolerant per-class precision/recall/F1 (tolerant accepts confusions between configured
neighbouring maturation steps), accuracy, balanced accuracy, MCC, weighted recall, expected
calibration error, one-vs-rest average precision, and a binary "blast vs non-blast" ROC AUC
from summed class probabilities (Matek 2019). Images whose true class the model does not have
are counted and reported separately, never silently dropped.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

import numpy as np


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, *, bins: int = 15) -> float:
    """ECE of the top-class confidence in ``bins`` equal-width bins.

    Example:
        >>> expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1]))
        0.0
    """
    if len(y) == 0:
        return float("nan")
    conf = probs.max(1)
    correct = (probs.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def tolerant_scores(
    cm: np.ndarray, class_names: Sequence[str], pairs: Iterable[tuple[str, str]]
) -> dict[str, dict[str, float]]:
    """Tolerant precision/recall/F1 per class from a confusion matrix (rows true, cols predicted).

    A prediction counts as correct when it equals the true class or forms a tolerated pair with
    it (pairs are symmetric; pairs naming classes the model lacks are ignored).
    """
    idx = {c: i for i, c in enumerate(class_names)}
    ok = np.eye(len(class_names), dtype=bool)
    for a, b in pairs:
        if a in idx and b in idx:
            ok[idx[a], idx[b]] = ok[idx[b], idx[a]] = True
    out: dict[str, dict[str, float]] = {}
    for i, c in enumerate(class_names):
        support, predicted = cm[i].sum(), cm[:, i].sum()
        rec = cm[i, ok[i]].sum() / support if support else float("nan")
        prec = cm[ok[:, i], i].sum() / predicted if predicted else float("nan")
        f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
        out[c] = {"precision_tolerant": float(prec), "recall_tolerant": float(rec), "f1_tolerant": float(f1)}
    return out


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and np.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def classification_metrics(
    true_codes: Sequence[str],
    probs: np.ndarray,
    class_names: Sequence[str],
    *,
    tolerance: Iterable[tuple[str, str]] = (),
    blast_classes: Sequence[str] = ("BLA",),
) -> dict[str, Any]:
    """Compute the evaluation block of ``metrics.json``.

    Args:
        true_codes: true class code of every image (may include codes the model lacks).
        probs: N x C predicted probabilities in ``class_names`` order.
        class_names: the model's classes.
        tolerance: tolerated confusion pairs.
        blast_classes: classes whose summed probability scores "blast".

    Returns:
        ``per_class`` {CODE: {precision, recall, f1, support, *_tolerant, average_precision}},
        ``macro`` {precision, recall, f1} over classes with support, overall scores,
        ``confusion_matrix`` counts and ``unknown_classes`` for true codes the model lacks.
        Undefined values (e.g. recall of a class without images) are ``None``.

    Example:
        >>> m = classification_metrics(["A", "B"], np.array([[.9, .1], [.2, .8]]), ["A", "B"])
        >>> m["accuracy"]
        1.0
    """
    names = list(class_names)
    idx = {c: i for i, c in enumerate(names)}
    probs = np.asarray(probs, dtype=np.float64)
    pred_all = probs.argmax(1) if len(probs) else np.zeros(0, dtype=int)
    known = np.array([c in idx for c in true_codes], dtype=bool)
    unknown: dict[str, dict[str, Any]] = {}
    for code in sorted({c for c in true_codes if c not in idx}):
        m = np.array([c == code for c in true_codes])
        cnt = Counter(names[p] for p in pred_all[m])
        unknown[code] = {
            "n": int(m.sum()),
            "predicted_as": dict(cnt.most_common()),
            "note": "class not in the model: not assessable",
        }
    y = np.array([idx[c] for c, k in zip(true_codes, known, strict=True) if k], dtype=int)
    p = probs[known]
    pred = pred_all[known]
    out: dict[str, Any] = {
        "n_images": len(true_codes),
        "n_evaluated": int(known.sum()),
        "class_names": names,
        "unknown_classes": unknown,
    }
    if len(y) == 0:
        out["note"] = "no image of a class the model knows"
        cleaned: dict[str, Any] = _nan_to_none(out)
        return cleaned
    with warnings.catch_warnings():
        # classes predicted but absent from y_true are expected on external data sets
        warnings.simplefilter("ignore", UserWarning)
        return _with_known(out, y, p, pred, names, idx, tolerance, blast_classes)


def _with_known(
    out: dict[str, Any],
    y: np.ndarray,
    p: np.ndarray,
    pred: np.ndarray,
    names: list[str],
    idx: dict[str, int],
    tolerance: Iterable[tuple[str, str]],
    blast_classes: Sequence[str],
) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score
    from sklearn.metrics import average_precision_score
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.metrics import confusion_matrix
    from sklearn.metrics import matthews_corrcoef
    from sklearn.metrics import precision_recall_fscore_support
    from sklearn.metrics import recall_score
    from sklearn.metrics import roc_auc_score

    labels = list(range(len(names)))
    tolerance = list(tolerance)
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=labels, zero_division=np.nan)
    cm = confusion_matrix(y, pred, labels=labels)
    tol = tolerant_scores(cm, names, tolerance)
    per_class: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(names):
        ap = float(average_precision_score(y == i, p[:, i])) if sup[i] else float("nan")
        per_class[c] = {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(sup[i]),
            "n_predicted": int(cm[:, i].sum()),
            "average_precision": ap,
            **tol[c],
        }
    present = [i for i in labels if sup[i] > 0]

    def macro(key: str) -> float:
        vals = [per_class[names[i]][key] for i in present]
        vals = [0.0 if v is None or np.isnan(v) else v for v in vals]
        return float(np.mean(vals))

    out.update(
        {
            "per_class": per_class,
            "macro": {
                "precision": macro("precision"),
                "recall": macro("recall"),
                "f1": macro("f1"),
                "precision_tolerant": macro("precision_tolerant"),
                "recall_tolerant": macro("recall_tolerant"),
                "classes": [names[i] for i in present],
            },
            "accuracy": float(accuracy_score(y, pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "mcc": float(matthews_corrcoef(y, pred)),
            "weighted_recall": float(
                recall_score(y, pred, labels=present, average="weighted", zero_division=0)
            ),
            "ece": expected_calibration_error(p, y),
            "confusion_matrix": {"labels": names, "counts": cm.tolist()},
            "tolerance_pairs": [list(t) for t in tolerance],
        }
    )
    bidx = [idx[b] for b in blast_classes if b in idx]
    if bidx:
        yb = np.isin(y, bidx)
        score = p[:, bidx].sum(1)
        auc = float(roc_auc_score(yb, score)) if 0 < yb.sum() < len(yb) else float("nan")
        out["blast_vs_nonblast"] = {
            "classes": [names[i] for i in bidx],
            "roc_auc": auc,
            "n_blast": int(yb.sum()),
            "n_other": int((~yb).sum()),
        }
    result: dict[str, Any] = _nan_to_none(out)
    return result


def mean_sd(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample sd over folds of the scalar and per-class metrics.

    Example:
        >>> mean_sd([{"accuracy": 0.8}, {"accuracy": 0.9}])["accuracy"]["mean"]
        0.85
    """

    def agg(vals: list[Any]) -> dict[str, float] | None:
        v = [float(x) for x in vals if isinstance(x, int | float) and not isinstance(x, bool)]
        if not v:
            return None
        sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
        return {"mean": float(np.mean(v)), "sd": sd, "n": len(v)}

    out: dict[str, Any] = {}
    for key in ("accuracy", "balanced_accuracy", "mcc", "weighted_recall", "ece"):
        r = agg([run.get(key) for run in runs])
        if r:
            out[key] = r
    out["macro"] = {
        k: agg([run.get("macro", {}).get(k) for run in runs]) for k in ("precision", "recall", "f1")
    }
    classes = sorted({c for run in runs for c in run.get("per_class", {})})
    out["per_class"] = {
        c: {
            k: agg([run.get("per_class", {}).get(c, {}).get(k) for run in runs])
            for k in ("precision", "recall", "f1", "recall_tolerant", "precision_tolerant")
        }
        for c in classes
    }
    return out


def novelty_figures(
    codes: Sequence[str], novelty: np.ndarray | None, names: Sequence[str], threshold: float
) -> dict[str, Any] | None:
    """How the novelty score separates images of classes the model lacks from known ones.

    Returns None without novelty (no domain reference); else the unfamiliar share of known and
    of unknown images at the fitted threshold, per true class, and the AUROC of novelty for
    unknown-vs-known (None unless both are present).
    """
    if novelty is None:
        return None
    from sklearn.metrics import roc_auc_score

    known = np.array([c in names for c in codes])
    flagged = novelty > threshold
    per_class = {
        c: {
            "n": int(sum(1 for x in codes if x == c)),
            "unfamiliar": float(flagged[np.array(codes) == c].mean()),
        }
        for c in sorted(set(codes))
    }
    both = known.any() and (~known).any()
    return {
        "threshold": None if not math.isfinite(threshold) else float(threshold),
        "unfamiliar_known": float(flagged[known].mean()) if known.any() else None,
        "unfamiliar_unknown": float(flagged[~known].mean()) if (~known).any() else None,
        "auroc_unknown_vs_known": float(roc_auc_score(~known, novelty)) if both else None,
        "n_known": int(known.sum()),
        "n_unknown": int((~known).sum()),
        "per_class": per_class,
    }
