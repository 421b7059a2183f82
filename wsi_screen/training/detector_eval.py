"""Detector metrics: precision, recall and F1 by box IoU and by centre distance, mAP50, counts.

Matching is greedy by descending score, as in the PASCAL VOC / COCO protocols: each prediction
matches at most one ground-truth box, the best free one. A prediction is a true positive

* by IoU when its box overlaps a ground-truth box with IoU >= ``iou_threshold`` (0.5), and
* by centre when its centre lies within ``centre_frac x min(gt width, gt height)`` of a
  ground-truth centre (default 0.5: inside the circle inscribed in the ground-truth box).

AP50 is the area under the precision-recall curve at IoU 0.5 with COCO's 101-point interpolation
(all predictions, any score); precision, recall and F1 use the predictions at or above
``score_threshold`` only. Detectors here are class-agnostic: per-class figures are recalls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.config import TilingConfig
from wsi_screen.detectors.base import Detector

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ImageDetections:
    """Ground truth and predictions of one image, boxes (x0, y0, x1, y1) in pixels."""

    image: str
    gt_boxes: FloatArray
    pred_boxes: FloatArray
    scores: FloatArray
    gt_classes: tuple[str, ...] = ()


@dataclass(slots=True)
class ImageCounts:
    """Per-image counts at the operating score threshold."""

    image: str
    n_gt: int
    n_pred: int
    tp_iou: int
    tp_centre: int


@dataclass(slots=True)
class _ClassTally:
    n_gt: int = 0
    tp_iou: int = 0
    tp_centre: int = 0


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of every box in ``a`` (N x 4) with every box in ``b`` (M x 4): an N x M array."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    ix, iy = np.clip(ix, 0, None), np.clip(iy, 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _greedy(similarity: FloatArray, ok: NDArray[np.bool_], order: NDArray[np.intp]) -> NDArray[np.intp]:
    """Match predictions (rows, in ``order``) to ground truth (cols); return matched col or -1."""
    matched = np.full(similarity.shape[0], -1, dtype=np.intp)
    taken = np.zeros(similarity.shape[1], dtype=bool)
    for i in order:
        cand = np.where(ok[i] & ~taken)[0]
        if len(cand) == 0:
            continue
        j = cand[np.argmax(similarity[i, cand])]
        matched[i] = j
        taken[j] = True
    return matched


def match_by_iou(
    gt: FloatArray, pred: FloatArray, scores: FloatArray, *, iou_threshold: float = 0.5
) -> NDArray[np.intp]:
    """Greedy IoU matching; return for each prediction the matched ground-truth index or -1."""
    ious = iou_matrix(pred, gt)
    order = np.argsort(-scores, kind="stable")
    return _greedy(ious, ious >= iou_threshold, order)


def match_by_centre(
    gt: FloatArray, pred: FloatArray, scores: FloatArray, *, centre_frac: float = 0.5
) -> NDArray[np.intp]:
    """Greedy centre-distance matching; return matched ground-truth index per prediction or -1."""
    if len(gt) == 0 or len(pred) == 0:
        return np.full(len(pred), -1, dtype=np.intp)
    gc = (gt[:, :2] + gt[:, 2:]) / 2
    pc = (pred[:, :2] + pred[:, 2:]) / 2
    dist = np.linalg.norm(pc[:, None, :] - gc[None, :, :], axis=2)
    radius = centre_frac * np.minimum(gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1])
    order = np.argsort(-scores, kind="stable")
    return _greedy(-dist, dist <= radius[None, :], order)


def average_precision(tp: NDArray[np.bool_], scores: FloatArray, n_gt: int) -> float:
    """Area under the precision-recall curve, COCO 101-point interpolation.

    Args:
        tp: per prediction, whether it is a true positive.
        scores: per prediction confidence.
        n_gt: number of ground-truth objects.
    """
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tps = np.cumsum(tp[order])
    fps = np.cumsum(~tp[order])
    recall = tps / n_gt
    precision = tps / np.maximum(tps + fps, 1)
    # precision envelope: best precision at any recall >= r
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    vals = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)
    return float(np.mean(vals))


def threshold_sweep(
    tp: NDArray[np.bool_], scores: FloatArray, n_gt: int, thresholds: Sequence[float]
) -> list[dict[str, float]]:
    """Precision, recall and F1 at each score threshold, from one matching of all predictions.

    Greedy matching takes predictions in descending score, so the matches of the predictions at
    or above a threshold are the same whether the lower ones exist or not: one matching of every
    prediction gives the exact figures of every operating point.
    """
    rows = []
    for t in thresholds:
        keep = scores >= t
        rows.append({"threshold": float(t), **_prf(int(tp[keep].sum()), int(keep.sum()), n_gt)})
    return rows


SWEEP_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Score thresholds of ``threshold_sweep`` in the detector metrics: 0.05 to 0.95."""


def _prf(tp: int, n_pred: int, n_gt: int) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gt if n_gt else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1}


@dataclass(slots=True)
class DetectionMetrics:
    """Accumulates images and computes the summary dictionary."""

    score_threshold: float = 0.0
    iou_threshold: float = 0.5
    centre_frac: float = 0.5
    per_image: list[ImageCounts] = field(default_factory=list)
    _tp_all: list[NDArray[np.bool_]] = field(default_factory=list)
    _scores_all: list[FloatArray] = field(default_factory=list)
    _classes: dict[str, _ClassTally] = field(default_factory=dict)
    _n_gt: int = 0

    def add(self, item: ImageDetections) -> ImageCounts:
        """Match one image's predictions and record its counts."""
        gt = np.asarray(item.gt_boxes, dtype=np.float64).reshape(-1, 4)
        pred = np.asarray(item.pred_boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(item.scores, dtype=np.float64).reshape(-1)
        # AP uses every prediction
        m_all = match_by_iou(gt, pred, scores, iou_threshold=self.iou_threshold)
        self._tp_all.append(m_all >= 0)
        self._scores_all.append(scores)
        self._n_gt += len(gt)
        # P/R/F1 at the operating point
        keep = scores >= self.score_threshold
        p_op, s_op = pred[keep], scores[keep]
        m_iou = match_by_iou(gt, p_op, s_op, iou_threshold=self.iou_threshold)
        m_cen = match_by_centre(gt, p_op, s_op, centre_frac=self.centre_frac)
        classes = item.gt_classes or tuple("cell" for _ in range(len(gt)))
        hit_iou = set(m_iou[m_iou >= 0].tolist())
        hit_cen = set(m_cen[m_cen >= 0].tolist())
        for j, name in enumerate(classes):
            tally = self._classes.setdefault(name, _ClassTally())
            tally.n_gt += 1
            tally.tp_iou += j in hit_iou
            tally.tp_centre += j in hit_cen
        counts = ImageCounts(item.image, len(gt), len(p_op), len(hit_iou), len(hit_cen))
        self.per_image.append(counts)
        return counts

    def summary(self) -> dict[str, Any]:
        """Return the metrics dictionary.

        Top level: ``precision``/``recall``/``f1`` by IoU and ``map50``; beneath: centre-distance
        figures, counts, per-class recalls and per-image counts.
        """
        n_gt = sum(c.n_gt for c in self.per_image)
        n_pred = sum(c.n_pred for c in self.per_image)
        tp_iou = sum(c.tp_iou for c in self.per_image)
        tp_cen = sum(c.tp_centre for c in self.per_image)
        tp_all = np.concatenate(self._tp_all) if self._tp_all else np.zeros(0, dtype=bool)
        sc_all = np.concatenate(self._scores_all) if self._scores_all else np.zeros(0)
        ap = average_precision(tp_all, sc_all, self._n_gt)
        errs = np.array([c.n_pred - c.n_gt for c in self.per_image], dtype=np.float64)
        iou_prf = _prf(tp_iou, n_pred, n_gt)
        sweep = threshold_sweep(tp_all, sc_all, self._n_gt, SWEEP_THRESHOLDS)
        best = max(sweep, key=lambda r: (r["f1"], r["threshold"]))
        return {
            **iou_prf,
            "map50": None if np.isnan(ap) else ap,
            "iou_threshold": self.iou_threshold,
            "score_threshold": self.score_threshold,
            # P/R/F1 by IoU at other operating points; thresholds below the detector's own
            # confidence cut see only the predictions it kept
            "threshold_sweep": sweep,
            "best_f1": best,
            "centre": {**_prf(tp_cen, n_pred, n_gt), "centre_frac": self.centre_frac},
            "counts": {
                "n_images": len(self.per_image),
                "n_gt": n_gt,
                "n_pred": n_pred,
                "tp": tp_iou,
                "fp": n_pred - tp_iou,
                "fn": n_gt - tp_iou,
                "count_mae": float(np.mean(np.abs(errs))) if len(errs) else 0.0,
                "count_bias": float(np.mean(errs)) if len(errs) else 0.0,
                "exact_count_fraction": float(np.mean(errs == 0)) if len(errs) else 0.0,
            },
            "per_class": {
                name: {
                    "n_gt": t.n_gt,
                    "recall": t.tp_iou / t.n_gt if t.n_gt else 0.0,
                    "recall_centre": t.tp_centre / t.n_gt if t.n_gt else 0.0,
                }
                for name, t in sorted(self._classes.items())
            },
            "per_image": [asdict(c) for c in self.per_image],
        }


def evaluate_detections(
    items: Iterable[ImageDetections],
    *,
    score_threshold: float = 0.0,
    iou_threshold: float = 0.5,
    centre_frac: float = 0.5,
) -> dict[str, Any]:
    """Evaluate detections of many images; see :meth:`DetectionMetrics.summary`.

    Example:
        >>> item = ImageDetections("a", np.array([[0, 0, 10, 10.]]), np.array([[1, 1, 10, 10.]]),
        ...                        np.array([0.9]))
        >>> round(evaluate_detections([item])["f1"], 2)
        1.0
    """
    m = DetectionMetrics(score_threshold, iou_threshold, centre_frac)
    for it in items:
        m.add(it)
    return m.summary()


def boxes_array(boxes: Sequence[Sequence[float]]) -> FloatArray:
    """Stack boxes into an N x 4 float array (empty input gives shape (0, 4))."""
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _tiling_for(
    width: int, height: int, mpp: float, det_mpp: float, max_tile_px: int, overlap_um: float
) -> TilingConfig:
    """One tile per image when it fits ``max_tile_px`` at the detection scale, else a tiling."""
    side = math.ceil(max(width, height) * mpp / det_mpp / 32) * 32
    tile_px = max(64, min(side, max_tile_px))
    if side <= max_tile_px:
        # a single tile: the overlap plays no part, keep it small enough to be valid
        overlap_um = min(overlap_um, 0.2 * tile_px * det_mpp)
    return TilingConfig(tile_size_px=tile_px, overlap_um=overlap_um)


def evaluate_on_yolo_dataset(
    detector: Detector,
    data: str | Path,
    *,
    split: str = "val",
    classes: Sequence[str] | None = None,
    mpp: float | None = None,
    field_um: float | None = None,
    score_threshold: float = 0.0,
    max_tile_px: int = 1024,
    overlap_um: float = 30.0,
    limit: int | None = None,
) -> dict[str, Any]:
    """Run a detector through the pipeline's tiling on a YOLO data set and score it.

    Each image goes through :func:`wsi_screen.stages.detect_cells`, the same path as
    ``wsi-screen run``, so the foreground and YOLO detectors are compared on equal terms. A
    progress bar (tqdm, stderr) counts the images when stderr is a terminal.

    Args:
        detector: any object following the detector contract.
        data: ``data.yaml`` or a folder with ``images/`` and ``labels/``.
        split: ``val`` or ``train`` (a flat ``images/`` folder counts as ``val``).
        classes: ground-truth classes to score against (None: all).
        mpp: microns per pixel of every image without a pixel size in its file.
        field_um: alternatively, the physical length of each image's long side, for data sets whose
            crops share a field of view but not a pixel size (TXL-PBC); per-image mpp follows.
        score_threshold: predictions below it are left out of P/R/F1 (not of mAP50).
        max_tile_px: largest tile side at the detection scale.
        overlap_um: tile overlap when an image needs several tiles.
        limit: score only the first ``limit`` images (quick checks).

    Raises:
        InputError: unknown split or class, or no pixel size available.
    """
    from tqdm.auto import tqdm

    from wsi_screen.errors import InputError
    from wsi_screen.sources import open_source
    from wsi_screen.stages import detect_cells
    from wsi_screen.training.detector_convert import find_splits
    from wsi_screen.training.detector_convert import label_path_for
    from wsi_screen.training.detector_convert import list_images
    from wsi_screen.training.detector_convert import read_yolo_labels
    from wsi_screen.training.detector_convert import select_classes

    splits, names = find_splits(data)
    if split not in splits:
        msg = f"{data}: no {split!r} split; found {sorted(splits)}"
        raise InputError(msg)
    images = list_images(splits[split])[: limit or None]
    max_cls = 0
    gts: list[list[Any]] = []
    for img in images:
        labs = read_yolo_labels(label_path_for(img))
        gts.append(labs)
        max_cls = max([max_cls, *(lab.cls + 1 for lab in labs)])
    names = names or [str(i) for i in range(max_cls)]
    keep = set(select_classes(names, classes))
    metrics = DetectionMetrics(score_threshold=score_threshold)
    timer = 0.0
    scored = tqdm(
        zip(images, gts, strict=True), total=len(images), desc="images scored", leave=False, disable=None
    )
    for img, labs in scored:
        with open_source(img) as src:
            w, h = src.dimensions
            img_mpp = src.mpp or (field_um / max(w, h) if field_um else mpp)
            if img_mpp is None:
                msg = f"{img}: no pixel size in the file; give mpp or field_um"
                raise InputError(msg)
            det_mpp = detector.target_mpp or img_mpp
            tiling = _tiling_for(w, h, img_mpp, det_mpp, max_tile_px, overlap_um)
            t0 = time.perf_counter()
            cells = detect_cells(src, detector, tiling, mpp=img_mpp)
            timer += time.perf_counter() - t0
        sel = [lab for lab in labs if lab.cls in keep]
        gt = boxes_array(
            [
                (
                    (lab.cx - lab.w / 2) * w,
                    (lab.cy - lab.h / 2) * h,
                    (lab.cx + lab.w / 2) * w,
                    (lab.cy + lab.h / 2) * h,
                )
                for lab in sel
            ]
        )
        metrics.add(
            ImageDetections(
                image=img.name,
                gt_boxes=gt,
                pred_boxes=boxes_array([c.bbox for c in cells]),
                scores=np.array([c.score for c in cells], dtype=np.float64),
                gt_classes=tuple(names[lab.cls] for lab in sel),
            )
        )
    out = metrics.summary()
    out["seconds_per_image"] = timer / max(1, len(images))
    return out
