"""Detector metrics on hand-made cases, and ``wsi-screen evaluate-detector`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_yolo_synthetic import DISC_MPP
from test_yolo_synthetic import write_disc_dataset

from wsi_screen.cli import main
from wsi_screen.training.detector_eval import ImageDetections
from wsi_screen.training.detector_eval import average_precision
from wsi_screen.training.detector_eval import evaluate_detections
from wsi_screen.training.detector_eval import iou_matrix
from wsi_screen.training.detector_eval import match_by_centre
from wsi_screen.training.detector_eval import match_by_iou


def _arr(*boxes: tuple[float, float, float, float]) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def test_perfect_detections() -> None:
    gt = _arr((0, 0, 10, 10), (20, 20, 40, 40))
    res = evaluate_detections([ImageDetections("a", gt, gt.copy(), np.array([0.9, 0.8]))])
    assert (res["precision"], res["recall"], res["f1"]) == (1.0, 1.0, 1.0)
    assert res["map50"] == pytest.approx(1.0)
    assert res["counts"]["count_mae"] == 0.0
    assert res["per_image"][0] == {"image": "a", "n_gt": 2, "n_pred": 2, "tp_iou": 2, "tp_centre": 2}


def test_false_positive_false_negative_and_threshold() -> None:
    gt = _arr((0, 0, 10, 10), (20, 20, 40, 40))
    pred = _arr((0, 0, 10, 10), (100, 100, 110, 110), (21, 21, 41, 41))
    scores = np.array([0.9, 0.8, 0.1])
    res = evaluate_detections([ImageDetections("a", gt, pred, scores)], score_threshold=0.5)
    assert res["precision"] == pytest.approx(0.5)
    assert res["recall"] == pytest.approx(0.5)
    assert res["counts"] == pytest.approx(
        {
            "n_images": 1,
            "n_gt": 2,
            "n_pred": 2,
            "tp": 1,
            "fp": 1,
            "fn": 1,
            "count_mae": 0.0,
            "count_bias": 0.0,
            "exact_count_fraction": 1.0,
        }
    )
    # AP uses every prediction: TP, FP, TP -> precision 1 up to recall .5, 2/3 up to recall 1
    assert res["map50"] == pytest.approx((51 * 1.0 + 50 * (2 / 3)) / 101, abs=1e-9)


def test_threshold_sweep_equals_scoring_at_each_threshold() -> None:
    """One matching of all predictions gives the figures of every operating point exactly."""
    rng = np.random.default_rng(3)
    items = []
    for i in range(12):
        gt = rng.uniform(0, 200, (int(rng.integers(0, 6)), 2))
        gt_boxes = np.hstack([gt, gt + rng.uniform(10, 30, gt.shape)])
        jitter = rng.normal(0, 4, gt_boxes.shape)
        fp = rng.uniform(0, 200, (int(rng.integers(0, 4)), 2))
        pred = np.vstack([gt_boxes + jitter, np.hstack([fp, fp + 20])])
        # overlapping duplicates make the greedy order matter
        pred = np.vstack([pred, pred[:2] + 1])
        items.append(ImageDetections(str(i), gt_boxes, pred, rng.uniform(0, 1, len(pred))))
    sweep = {r["threshold"]: r for r in evaluate_detections(items)["threshold_sweep"]}
    assert len(sweep) == 19
    for t in (0.05, 0.3, 0.55, 0.95):
        at = evaluate_detections(items, score_threshold=t)
        assert sweep[t]["precision"] == pytest.approx(at["precision"])
        assert sweep[t]["recall"] == pytest.approx(at["recall"])
        assert sweep[t]["f1"] == pytest.approx(at["f1"])
    best = evaluate_detections(items)["best_f1"]
    assert best["f1"] == max(r["f1"] for r in sweep.values())
    # lower thresholds never lose recall
    recalls = [sweep[t]["recall"] for t in sorted(sweep)]
    assert recalls == sorted(recalls, reverse=True)


def test_centre_matching_accepts_shifted_boxes_that_fail_iou() -> None:
    gt = _arr((0, 0, 20, 20))
    pred = _arr((5, 5, 13, 13))  # small box near the centre: IoU 0.16, centre 1 px off
    scores = np.array([0.9])
    assert match_by_iou(gt, pred, scores).tolist() == [-1]
    assert match_by_centre(gt, pred, scores).tolist() == [0]
    far = _arr((14, 14, 34, 34))  # centre 14 px away > 0.5 * 20
    assert match_by_centre(gt, far, scores).tolist() == [-1]
    res = evaluate_detections([ImageDetections("a", gt, pred, scores)])
    assert res["recall"] == 0.0
    assert res["centre"]["recall"] == 1.0


def test_one_prediction_matches_one_truth() -> None:
    gt = _arr((0, 0, 10, 10))
    pred = _arr((0, 0, 10, 10), (0, 0, 10, 11))  # a duplicate is a false positive
    res = evaluate_detections([ImageDetections("a", gt, pred, np.array([0.9, 0.8]))])
    assert res["counts"]["tp"] == 1
    assert res["counts"]["fp"] == 1
    assert res["centre"]["precision"] == 0.5


def test_empty_cases() -> None:
    assert iou_matrix(_arr(), _arr((0, 0, 1, 1))).shape == (0, 1)
    res = evaluate_detections([ImageDetections("a", _arr(), _arr(), np.zeros(0))])
    assert res["map50"] is None  # no ground truth: undefined
    assert res["f1"] == 0.0
    assert average_precision(np.zeros(0, bool), np.zeros(0), 3) == 0.0


def test_per_class_recall() -> None:
    gt = _arr((0, 0, 10, 10), (20, 20, 30, 30))
    pred = _arr((0, 0, 10, 10))
    item = ImageDetections("a", gt, pred, np.array([0.9]), gt_classes=("WBC", "Platelets"))
    res = evaluate_detections([item])
    assert res["per_class"]["WBC"]["recall"] == 1.0
    assert res["per_class"]["Platelets"]["recall"] == 0.0


def test_evaluate_detector_cli_foreground(tmp_path: Path) -> None:
    data = write_disc_dataset(tmp_path / "data", n_train=1, n_val=5, size=(256, 192), rbc_class=True)
    out = tmp_path / "eval"
    res = CliRunner().invoke(
        main,
        [
            "evaluate-detector",
            "foreground",
            str(data),
            "-o",
            str(out),
            "--classes",
            "cell",
            "--mpp",
            str(DISC_MPP),
            "--option",
            "cell_diameter_um=12",
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for key in ("precision", "recall", "f1", "map50"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["recall"] > 0.8  # easy discs, boxes of the right size
    assert metrics["centre"]["f1"] > 0.8
    assert set(metrics["per_class"]) == {"cell"}
    assert metrics["counts"]["n_images"] == 5
    rows = (out / "per_image.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "image,n_gt,n_pred,tp_iou,tp_centre"
    assert len(rows) == 6


def test_evaluate_detector_cli_errors(tmp_path: Path) -> None:
    data = write_disc_dataset(tmp_path / "data", n_train=1, n_val=1)
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "evaluate-detector",
            "foreground",
            str(data),
            "-o",
            str(tmp_path / "o"),
            "--classes",
            "Monocyte",
            "--mpp",
            "0.4",
        ],
    )
    assert res.exit_code == 2  # a class the data set lacks: a usage error, as documented
    assert "Monocyte" in res.output
    res = runner.invoke(
        main, ["evaluate-detector", "no-such-weights", str(data), "-o", str(tmp_path / "o"), "--mpp", "0.4"]
    )
    assert res.exit_code == 2
    assert "not found" in res.output
