"""The unfamiliar-cell flag: per-cell novelty, its fitted threshold, and every place it shows."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from wsi_screen.aggregate import summarize
from wsi_screen.classifiers.domain import DomainReference
from wsi_screen.config import AggregateConfig
from wsi_screen.reports.cells_table import cells_frame
from wsi_screen.reports.selection import review_queue
from wsi_screen.training.domain_fit import GateFitConfig
from wsi_screen.training.domain_fit import fit_reference
from wsi_screen.training.domain_fit import fit_thresholds
from wsi_screen.training.metrics import novelty_figures
from wsi_screen.types import Cell
from wsi_screen.types import CellCalls

F = 24
CLASSES = ("BLA", "LYT", "MON", "NGS")


def _features(rng: np.random.Generator, y: np.ndarray, shift: float = 0.0) -> np.ndarray:
    return rng.normal(size=(len(y), F)) + 3.0 * np.eye(F)[y] + shift


def _fitted(seed: int = 0) -> DomainReference:
    """A reference on 4 known classes, thresholds fitted on validation data as calibrate does."""
    rng = np.random.default_rng(seed)
    y_tr, y_va = np.arange(400) % 4, np.arange(200) % 4
    colour = rng.normal([0.2, 0.4, 0.1, 0.1, 0.2, 0.05], 0.02, size=(400, 6))
    ref = fit_reference(_features(rng, y_tr), y_tr, colour, components=8)
    cfg = GateFitConfig(n_groups=200, gammas=(1.0,), brightness=(1.0,))
    val_colour = rng.normal([0.2, 0.4, 0.1, 0.1, 0.2, 0.05], 0.02, size=(200, 6))
    return fit_thresholds(ref, {(1.0, 1.0): (_features(rng, y_va), val_colour)}, y_va, cfg)


def test_threshold_is_the_validation_quantile_and_separates_an_unseen_class() -> None:
    ref = _fitted()
    assert math.isfinite(ref.cell_threshold)
    assert ref.info["validation_scores"]["cells"]["quantile"] == pytest.approx(ref.cell_threshold)
    rng = np.random.default_rng(7)
    known = ref.feature_distances(_features(rng, np.arange(300) % 4))
    # a fifth class, never seen in fitting, inside the features the model uses (the PCA span of
    # the known classes) but far from every known class
    unseen = ref.feature_distances(rng.normal(size=(300, F)) - 8.0 * (np.eye(F)[0] + np.eye(F)[1]))
    assert np.mean(known > ref.cell_threshold) == pytest.approx(0.05, abs=0.04)
    assert np.mean(unseen > ref.cell_threshold) > 0.8
    auroc = roc_auc_score(np.r_[np.zeros(300), np.ones(300)], np.r_[known, unseen])
    assert auroc > 0.95


def test_threshold_survives_model_json_and_older_bundles_never_flag(tmp_path: object) -> None:
    ref = _fitted()
    block = ref.to_json("d.safetensors")
    assert block["cell_threshold"] == pytest.approx(ref.cell_threshold)
    from pathlib import Path

    folder = Path(str(tmp_path))
    ref.save_tensors(folder / "d.safetensors")
    assert DomainReference.load(folder, block).cell_threshold == pytest.approx(ref.cell_threshold)
    old = {k: v for k, v in block.items() if k != "cell_threshold"}
    assert DomainReference.load(folder, old).cell_threshold == math.inf


def _calls(ref: DomainReference, features: np.ndarray, labels: list[str]) -> CellCalls:
    n = len(labels)
    cells = tuple(Cell(i, "f", 10.0 * i, 5.0, (0, 0, 4, 4), 0.9, "fg") for i in range(n))
    probs = np.full((n, len(CLASSES)), 0.02, np.float32)
    for i, lab in enumerate(labels):
        probs[i, CLASSES.index(lab)] = 0.94
    stats = np.zeros((n, 7), np.float32)
    stats[:, 6] = ref.feature_distances(features)
    return CellCalls(cells, probs, CLASSES, "m", stats, ref)


def test_cells_table_queue_and_report_carry_the_flag() -> None:
    ref = _fitted()
    rng = np.random.default_rng(3)
    known = _features(rng, np.array([0, 1, 2, 3, 1, 2]))
    strange = rng.normal(size=(2, F)) - 10.0 * np.eye(F)[[0, 2]]
    labels = ["BLA", "LYT", "MON", "NGS", "LYT", "MON", "BLA", "LYT"]
    calls = _calls(ref, np.vstack([known, strange]), labels)
    assert calls.unfamiliar is not None
    assert calls.unfamiliar.tolist()[-2:] == [True, True]
    frame = cells_frame(calls)
    assert frame["unfamiliar"].to_list() == calls.unfamiliar.tolist()
    assert frame["novelty"].to_list() == pytest.approx(calls.novelty.tolist())
    cfg = AggregateConfig()
    summary = summarize(labels, calls.probs, CLASSES, cfg, unfamiliar=calls.unfamiliar)
    unf = summary["qc"]["unfamiliar"]
    assert unf["n"] == int(calls.unfamiliar.sum())
    assert unf["counted_by_class"]["BLA"] >= 1
    assert unf["depends"][0] == "blast %"
    report = {"model": {"classes": list(CLASSES)}, "blast": summary["blast"]}
    queue = review_queue(frame, report, cfg, limit=10)
    flagged = {i for i, u in enumerate(calls.unfamiliar.tolist()) if u}
    assert {q.cell_id for q in queue[: len(flagged)]} == flagged
    assert queue[0].reason.startswith("unfamiliar cell")
    # without a reference: no columns, no figure
    plain = CellCalls(calls.cells, calls.probs, CLASSES, "m")
    assert "novelty" not in cells_frame(plain).columns
    assert summarize(labels, calls.probs, CLASSES, cfg)["qc"]["unfamiliar"] is None


def test_evaluation_figures_of_unknown_classes() -> None:
    codes = ["BLA", "LYT", "PLM", "PLM"]
    fig = novelty_figures(codes, np.array([1.0, 2.0, 9.0, 3.0]), list(CLASSES), 2.5)
    assert fig is not None
    assert fig["auroc_unknown_vs_known"] == pytest.approx(1.0)
    assert fig["unfamiliar_unknown"] == pytest.approx(1.0)
    assert fig["unfamiliar_known"] == pytest.approx(0.0)
    assert novelty_figures(codes, None, list(CLASSES), 2.5) is None
    assert replace(_fitted(), cell_threshold=math.inf).to_json().get("cell_threshold") is None


def test_written_report_table_and_page_show_unfamiliar_cells(tmp_path: object) -> None:
    import json
    import sys
    from pathlib import Path

    import polars as pl

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
    from _fake import fake_calls
    from _fake import write_fake_report

    ref = _fitted()
    folder = Path(str(tmp_path))
    src = folder / "f.png"
    src.write_bytes(b"not read: the fake source draws its pixels")
    calls, _ = fake_calls(40, 2452, 2056, seed=1)
    stats = np.zeros((40, 7), np.float32)
    stats[:, :6] = ref.colour_mean
    stats[:, 6] = 1.0
    stats[[3, 7], 6] = 50.0  # two cells far from every class
    calls = CellCalls(calls.cells, calls.probs, calls.class_names, "fake", stats, ref)
    write_fake_report(folder / "out", src, calls=calls)
    report = json.loads((folder / "out" / "report.json").read_text())
    frame = pl.read_parquet(folder / "out" / "cells.parquet")
    assert frame.filter(pl.col("unfamiliar"))["cell_id"].to_list() == [3, 7]
    assert report["qc"]["unfamiliar"]["n"] == 2
    page = (folder / "out" / "report.html").read_text()
    assert 'id="unfamiliar-cells"' in page


def test_a_reference_without_a_cell_threshold_decides_nothing() -> None:
    """An older bundle's reference gives novelty but no unfamiliar flag, and no '0 unfamiliar' figure."""
    ref = replace(_fitted(), cell_threshold=math.inf)
    rng = np.random.default_rng(4)
    calls = _calls(ref, _features(rng, np.array([0, 1, 2])), ["BLA", "LYT", "MON"])
    assert calls.novelty is not None and calls.unfamiliar is None
    frame = cells_frame(calls)
    assert "novelty" in frame.columns and "unfamiliar" not in frame.columns
    assert (
        summarize(calls.labels, calls.probs, CLASSES, AggregateConfig(), unfamiliar=calls.unfamiliar)["qc"][
            "unfamiliar"
        ]
        is None
    )
