from __future__ import annotations

import numpy as np
import pytest

from wsi_screen.training.metrics import classification_metrics
from wsi_screen.training.metrics import expected_calibration_error
from wsi_screen.training.metrics import mean_sd
from wsi_screen.training.metrics import tolerant_scores

NAMES = ["BLA", "PMO", "LYT"]


def _onehot(pred: list[str], p: float = 0.8) -> np.ndarray:
    out = np.full((len(pred), len(NAMES)), (1 - p) / (len(NAMES) - 1))
    for i, c in enumerate(pred):
        out[i, NAMES.index(c)] = p
    return out


# hand-made confusion matrix (rows true, cols predicted):
#        BLA PMO LYT
# BLA     3   1   0
# PMO     2   2   0
# LYT     0   1   1
TRUE = ["BLA"] * 4 + ["PMO"] * 4 + ["LYT"] * 2
PRED = ["BLA", "BLA", "BLA", "PMO", "BLA", "BLA", "PMO", "PMO", "PMO", "LYT"]


def test_strict_metrics_match_hand_computation() -> None:
    m = classification_metrics(TRUE, _onehot(PRED), NAMES)
    assert m["confusion_matrix"]["counts"] == [[3, 1, 0], [2, 2, 0], [0, 1, 1]]
    pc = m["per_class"]
    assert pc["BLA"]["precision"] == pytest.approx(3 / 5)
    assert pc["BLA"]["recall"] == pytest.approx(3 / 4)
    assert pc["PMO"]["precision"] == pytest.approx(2 / 4)
    assert pc["PMO"]["recall"] == pytest.approx(2 / 4)
    assert pc["LYT"]["precision"] == pytest.approx(1.0)
    assert pc["LYT"]["recall"] == pytest.approx(1 / 2)
    assert pc["BLA"]["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert [pc[c]["support"] for c in NAMES] == [4, 4, 2]
    assert m["accuracy"] == pytest.approx(6 / 10)
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert m["macro"]["recall"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert m["macro"]["precision"] == pytest.approx((0.6 + 0.5 + 1.0) / 3)
    assert m["weighted_recall"] == pytest.approx(0.6)
    assert -1 <= m["mcc"] <= 1


def test_tolerant_metrics() -> None:
    m = classification_metrics(TRUE, _onehot(PRED), NAMES, tolerance=[("PMO", "BLA"), ("X", "Y")])
    pc = m["per_class"]
    assert pc["BLA"]["recall_tolerant"] == pytest.approx(1.0)
    assert pc["PMO"]["recall_tolerant"] == pytest.approx(1.0)
    assert pc["LYT"]["recall_tolerant"] == pytest.approx(0.5)  # LYT->PMO is not tolerated
    # predicted PMO: 1 BLA (tolerated), 2 PMO, 1 LYT (not) -> 3/4
    assert pc["PMO"]["precision_tolerant"] == pytest.approx(3 / 4)
    cm = np.array(m["confusion_matrix"]["counts"])
    assert tolerant_scores(cm, NAMES, [])["BLA"]["recall_tolerant"] == pytest.approx(0.75)


def test_unknown_classes_reported_not_dropped() -> None:
    true = [*TRUE, "HAC", "HAC"]
    probs = np.vstack([_onehot(PRED), _onehot(["LYT", "LYT"])])
    m = classification_metrics(true, probs, NAMES)
    assert m["n_images"] == 12
    assert m["n_evaluated"] == 10
    assert m["unknown_classes"]["HAC"]["n"] == 2
    assert m["unknown_classes"]["HAC"]["predicted_as"] == {"LYT": 2}
    assert m["accuracy"] == pytest.approx(0.6)


def test_class_without_images_is_none_and_out_of_macro() -> None:
    m = classification_metrics(["BLA", "PMO"], _onehot(["BLA", "LYT"]), NAMES)
    assert m["per_class"]["LYT"]["recall"] is None
    assert m["per_class"]["LYT"]["precision"] == 0.0
    assert m["macro"]["classes"] == ["BLA", "PMO"]
    assert m["macro"]["recall"] == pytest.approx(0.5)


def test_blast_auc_from_summed_probabilities() -> None:
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.4, 0.2, 0.4]])
    m = classification_metrics(["BLA", "PMO", "LYT", "BLA"], probs, NAMES)
    assert m["blast_vs_nonblast"]["roc_auc"] == pytest.approx(1.0)
    m2 = classification_metrics(["BLA", "PMO", "LYT", "BLA"], probs, NAMES, blast_classes=("BLA", "PMO"))
    assert m2["blast_vs_nonblast"]["classes"] == ["BLA", "PMO"]


def test_ece() -> None:
    y = np.array([0, 0, 1, 1])
    perfect = np.array([[1.0, 0], [1, 0], [0, 1], [0, 1]])
    assert expected_calibration_error(perfect, y) == pytest.approx(0.0)
    over = np.array([[0.9, 0.1]] * 4)  # 90 % confident, 50 % right
    assert expected_calibration_error(over, y) == pytest.approx(0.4)


def test_mean_sd_over_folds() -> None:
    runs = [
        classification_metrics(TRUE, _onehot(PRED), NAMES),
        classification_metrics(TRUE, _onehot(TRUE), NAMES),
    ]
    agg = mean_sd(runs)
    assert agg["accuracy"]["mean"] == pytest.approx(0.8)
    assert agg["accuracy"]["sd"] == pytest.approx(np.std([0.6, 1.0], ddof=1))
    assert agg["per_class"]["BLA"]["recall"]["mean"] == pytest.approx(0.875)
