"""Evaluate a model bundle on a labelled folder: metrics.json, predictions.csv and plots.

Inference goes through :class:`~wsi_screen.classifiers.timm_classifier.TimmClassifier`, so the
transform is exactly the pipeline's. Images from another scanner are brought to the model's
physical scale when their microns per pixel are given (``mpp``); otherwise they are resized
whole to the patch size, and ``metrics.json`` records which was done.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.classifiers.calibration import softmax
from wsi_screen.errors import InputError
from wsi_screen.io import atomic_path
from wsi_screen.io import atomic_write_text
from wsi_screen.textfiles import MAX_FILE_LIST_BYTES
from wsi_screen.textfiles import read_file_list
from wsi_screen.textfiles import read_json_object
from wsi_screen.training.datasets import LabelledImage
from wsi_screen.training.datasets import PatchSet
from wsi_screen.training.datasets import load_patches
from wsi_screen.training.datasets import scan_folder
from wsi_screen.training.metrics import classification_metrics
from wsi_screen.training.metrics import expected_calibration_error
from wsi_screen.training.metrics import novelty_figures
from wsi_screen.training.overlap import training_overlap
from wsi_screen.training.schemes import ClassScheme

log = logging.getLogger(__name__)


def select_files(ps: PatchSet, only: Path) -> PatchSet:
    """Keep the items listed in ``only``: a text file of paths relative to the data folder.

    A ``split.json`` written by training is also accepted; its ``test`` list is used, or, for a
    model trained on a manifest, the test list of the source whose folder is the data folder.

    Raises:
        InputError: the list names files that are not in the data set.
    """
    if only.suffix == ".json":  # read bounded: size and nesting capped, one-line errors
        split = read_json_object(only, error=InputError, max_bytes=MAX_FILE_LIST_BYTES)
        wanted = [str(p) for p in split.get("test", [])]
        for src in (split.get("manifest") or {}).get("sources", []):
            # sources are matched by folder name: the recorded root may be relative to its manifest
            if Path(str(src.get("root"))).name == Path(ps.root).resolve().name:
                wanted = [str(p) for p in (split.get("test_by_source") or {}).get(src.get("name"), [])]
    else:
        wanted = read_file_list(only, error=InputError)
    rel = {str(it.path.relative_to(ps.root)): i for i, it in enumerate(ps.items)}
    other = {str(p.relative_to(ps.root)) for paths in ps.unmapped.values() for p in paths}
    missing = [w for w in wanted if w not in rel and w not in other]
    if missing:
        msg = f"{only}: {len(missing)} listed file(s) not found under {ps.root}, e.g. {missing[0]}"
        raise InputError(msg)
    keep = set(wanted)
    unmapped = {
        lab: [p for p in paths if str(p.relative_to(ps.root)) in keep] for lab, paths in ps.unmapped.items()
    }
    sub = ps.subset(sorted(rel[w] for w in wanted if w in rel))
    return PatchSet(
        sub.root, sub.items, sub.dropped, {k: v for k, v in unmapped.items() if v}, sub.class_names
    )


def predict_folder(
    bundle: ModelBundle,
    ps: PatchSet,
    *,
    mpp: float | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    chunk: int = 512,
    errors: list[tuple[int, str]] | None = None,
    novelty: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Class probabilities (N x C) of every item of ``ps``.

    With ``novelty`` given and a domain reference in the bundle, each image's novelty (feature
    distance to the nearest training class, as ``cells.parquet`` of ``run`` has it) is appended
    to it, one array per chunk, from the same forward pass.

    ``batch_size`` None: the device's default, as ``wsi-screen run`` (bf16 arithmetic may differ
    in the last bits between batch sizes). With ``errors`` given, unreadable images are recorded there as (index, message) (their rows
    are meaningless and must be dropped) instead of stopping the evaluation. A progress bar
    (tqdm, stderr) counts the images when stderr is a terminal.
    """
    from tqdm.auto import tqdm

    from wsi_screen.classifiers.timm_classifier import TimmClassifier

    clf = TimmClassifier(bundle, device=device, batch_size=batch_size)
    scale = None if mpp is None else mpp / bundle.mpp
    paths = ps.paths
    out = []
    bar = tqdm(total=len(paths), desc="images classified", unit="image", leave=False, disable=None)
    with bar:
        for s in range(0, len(paths), chunk):
            bad: list[tuple[int, str]] | None = None if errors is None else []
            arr = load_patches(
                paths[s : s + chunk], patch_size_px=bundle.patch_size_px, scale=scale, errors=bad
            )
            if errors is not None and bad:
                errors.extend((s + i, msg) for i, msg in bad)
            if novelty is not None and clf.domain is not None:
                probs, feats = clf._probs_and_features(arr)  # noqa: SLF001 - one pass for both
                out.append(probs)
                novelty.append(clf.domain.feature_distances(feats) if len(feats) else np.zeros(0))
            else:
                out.append(clf.classify_arrays(arr))
            bar.update(len(arr))
    if not out:
        return np.zeros((0, len(bundle.class_names)), dtype=np.float32)
    return np.concatenate(out)


def _save_fig(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def plot_confusion(
    cm: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], path: Path, title: str
) -> None:
    """Write a row-normalised confusion matrix (rows true, columns predicted) as PNG."""
    from matplotlib.figure import Figure

    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig = Figure(figsize=(1.0 + 0.55 * len(col_labels), 1.0 + 0.5 * len(row_labels)))
    ax = fig.add_subplot()
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=90)
    ax.set_yticks(
        range(len(row_labels)), [f"{r} (n={int(n)})" for r, n in zip(row_labels, rows[:, 0], strict=True)]
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    _save_fig(fig, path)


def plot_pr_curves(y_codes: Sequence[str], probs: np.ndarray, names: Sequence[str], path: Path) -> None:
    """Write one-vs-rest precision-recall curves of the classes with images."""
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve

    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot()
    y = np.array(y_codes)
    for i, c in enumerate(names):
        t = y == c
        if t.any():
            p, r, _ = precision_recall_curve(t, probs[:, i])
            ax.plot(r, p, label=c, lw=1.2)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("precision-recall, one vs rest", fontsize=9)
    _save_fig(fig, path)


def plot_blast_roc(
    y_codes: Sequence[str], probs: np.ndarray, names: Sequence[str], blast: Sequence[str], path: Path
) -> bool:
    """Write the blast-vs-non-blast ROC curve from summed blast-class probabilities.

    Returns:
        Whether it was written (not when the model has no blast class or the data holds only
        blasts or none).
    """
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve

    bidx = [names.index(b) for b in blast if b in names]
    yb = np.isin(np.array(y_codes), list(blast))
    if not bidx or yb.all() or not yb.any():
        return False
    score = probs[:, bidx].sum(1)
    fpr, tpr, _ = roc_curve(yb, score)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(yb, score):.3f}")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"{'+'.join(blast)} vs rest (summed probabilities)", fontsize=9)
    ax.legend()
    _save_fig(fig, path)
    return True


def evaluate_bundle(
    bundle: ModelBundle,
    data: Path,
    out: Path,
    *,
    scheme: ClassScheme | None = None,
    tolerance: Sequence[tuple[str, str]] = (),
    mpp: float | None = None,
    only: Path | None = None,
    blast_classes: Sequence[str] = ("BLA",),
    device: str = "auto",
    written: list[Path] | None = None,
) -> dict[str, Any]:
    """Evaluate ``bundle`` on the labelled folder ``data``; write results into ``out``.

    Writes ``metrics.json``, ``predictions.csv``, ``confusion_matrix.png``, ``pr_curves.png``
    and (when blasts are present) ``blast_roc.png``; with ``written`` given, the paths of the
    files written are appended to it.

    Example:
        >>> evaluate_bundle(resolve_model("default"), Path("pbc"), Path("out"))  # doctest: +SKIP
    """
    ps = scan_folder(data, scheme)
    per_class: dict[str, int] = {}
    for it in ps.items:  # the whole folder, before --only: what identifies the training data set
        per_class[str(it.target)] = per_class.get(str(it.target), 0) + 1
    if only is not None:
        ps = select_files(ps, only)
    # images of unmapped labels are classified too and reported as not assessable
    extra = [LabelledImage(p, lab, None) for lab, ps_ in ps.unmapped.items() for p in ps_]
    full = PatchSet(ps.root, ps.items + tuple(extra), ps.dropped, ps.unmapped, ps.class_names)
    codes = [str(it.target) for it in ps.items] + [it.source_label for it in extra]
    all_paths = all_paths_full = full.paths
    errors: list[tuple[int, str]] = []
    nov_parts: list[np.ndarray] = []
    probs = predict_folder(bundle, full, mpp=mpp, device=device, errors=errors, novelty=nov_parts)
    nov = np.concatenate(nov_parts) if nov_parts else None
    if errors:  # unreadable images are reported, never scored
        bad = {i for i, _ in errors}
        for _, msg in errors:
            log.warning("skipped unreadable image %s", msg)
        keep = [i for i in range(len(codes)) if i not in bad]
        codes = [codes[i] for i in keep]
        all_paths = [all_paths[i] for i in keep]
        probs = probs[keep]
        nov = None if nov is None else nov[keep]
    names = list(bundle.class_names)
    m = classification_metrics(codes, probs, names, tolerance=tolerance, blast_classes=blast_classes)
    m["calibration"] = calibration_figures(bundle, codes, probs, names)
    cell_thr = float((bundle.domain or {}).get("cell_threshold", math.inf))
    unfamiliar = None if nov is None else nov > cell_thr
    m["novelty"] = novelty_figures(codes, nov, names, cell_thr)
    rel = [p.relative_to(ps.root).as_posix() for p in all_paths]
    m["training_overlap"] = training_overlap(bundle, data, rel, per_class)
    m["unreadable"] = [
        {"path": str(all_paths_full[i].relative_to(ps.root)), "error": msg} for i, msg in errors
    ]
    m["model"] = {
        "name": bundle.name,
        "architecture": bundle.architecture,
        "path": str(bundle.path) if bundle.path else None,
        "sha256": bundle.sha256() if bundle.path else None,
    }
    m["data"] = {
        "root": str(data),
        "scheme": scheme.to_json() if scheme else "class folders",
        "dropped_by_scheme": ps.dropped,
        "selected_by": str(only) if only else None,
    }
    m["scale_handling"] = (
        {"mode": "rescaled", "source_mpp": mpp, "model_mpp": bundle.mpp, "factor": mpp / bundle.mpp}
        if mpp is not None
        else {
            "mode": "resized_whole_image_to_patch",
            "model_mpp": bundle.mpp,
            "note": "no --mpp given: images of another size were resized to the patch size",
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(m, indent=2) + "\n")
    from wsi_screen.textsafe import csv_cell

    buf = io.StringIO()
    w = csv.writer(buf)
    extra_cols = ["novelty", "unfamiliar"] if nov is not None else []
    w.writerow(["path", "true", "predicted", "confidence", *[f"prob_{c}" for c in names], *extra_cols])
    for i, (p, c, pr) in enumerate(zip(all_paths, codes, probs, strict=True)):
        w.writerow(
            [
                csv_cell(str(p.relative_to(ps.root))),  # names and classes are never formulas
                csv_cell(str(c)),
                csv_cell(names[int(pr.argmax())]),
                f"{pr.max():.4f}",
                *[f"{v:.4f}" for v in pr],
                *(
                    [f"{nov[i]:.4f}", str(bool(unfamiliar[i])).lower()]
                    if nov is not None and unfamiliar is not None
                    else []
                ),
            ]
        )
    atomic_write_text(out / "predictions.csv", buf.getvalue())
    plots = _plots(codes, probs, names, blast_classes, out)
    if written is not None:
        written.extend([out / "metrics.json", out / "predictions.csv", *plots])
    return m


def uncalibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Undo temperature scaling: ``softmax(T * log p)`` equals ``softmax(logits)``.

    ``log p = z / T - c`` per row, so ``T * log p`` differs from the logits ``z`` by a row constant.

    Example:
        >>> p = softmax(np.array([[2.0, 0.0]]), 2.0)
        >>> bool(np.allclose(uncalibrated(p, 2.0), softmax(np.array([[2.0, 0.0]]))))
        True
    """
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-300, None))
    return softmax(logp * float(temperature))


def calibration_figures(
    bundle: ModelBundle, codes: Sequence[str], probs: np.ndarray, names: Sequence[str]
) -> dict[str, Any]:
    """ECE of the evaluated images with the bundle's temperature and without it (T = 1).

    Only images of the model's classes count. ``ece_after`` is the figure of the probabilities
    the pipeline reports; ``ece_before`` is that of the raw softmax.
    """
    t = bundle.calibration.temperature if bundle.calibration is not None else 1.0
    idx = {c: i for i, c in enumerate(names)}
    known = [i for i, c in enumerate(codes) if c in idx]
    out: dict[str, Any] = {"temperature": t, "n": len(known), "ece_bins": 15}
    if not known:
        return {**out, "ece_before": None, "ece_after": None}
    y = np.array([idx[codes[i]] for i in known])
    p = np.asarray(probs)[known]
    out["ece_after"] = expected_calibration_error(p, y)
    out["ece_before"] = expected_calibration_error(uncalibrated(p, t), y) if t != 1.0 else out["ece_after"]
    return out


def _plots(
    codes: list[str], probs: np.ndarray, names: list[str], blast: Sequence[str], out: Path
) -> list[Path]:
    """Write the confusion matrix, PR curves and blast ROC that the data allow; return their paths."""
    from sklearn.metrics import confusion_matrix

    rows = names + sorted({c for c in codes if c not in names})
    present_rows = [r for r in rows if r in set(codes)]
    pred = [names[i] for i in probs.argmax(1)] if len(probs) else []
    cm_full = confusion_matrix(codes, pred, labels=rows) if codes else np.zeros((0, 0))
    keep = [rows.index(r) for r in present_rows]
    cm = cm_full[np.ix_(keep, list(range(len(names))))] if keep else np.zeros((0, len(names)))
    written: list[Path] = []
    if keep:
        plot_confusion(
            cm,
            present_rows,
            names,
            out / "confusion_matrix.png",
            "row-normalised; rows without a model class are not assessable",
        )
        written.append(out / "confusion_matrix.png")
    known = [i for i, c in enumerate(codes) if c in names]
    if known:
        plot_pr_curves([codes[i] for i in known], probs[known], names, out / "pr_curves.png")
        written.append(out / "pr_curves.png")
        roc = out / "blast_roc.png"
        if plot_blast_roc([codes[i] for i in known], probs[known], names, list(blast), roc):
            written.append(roc)
    return written
