"""End to end on a field composed from real Matek patches with known positions and classes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import polars as pl
from _helpers import require_shared_data
from _synthetic import compose_real_field
from click.testing import CliRunner

from wsi_screen.classifiers import shipped_models
from wsi_screen.cli import main

CLASSES = ("BLA", "EOS", "LYT", "MON", "NGS", "PMO")


def test_real_patch_field_through_run(tmp_path: Path) -> None:
    root = require_shared_data("matek_bm")
    assert "default" in shipped_models(), "the default classifier must ship with the package"
    rng = np.random.default_rng(11)
    patches, truth = [], []
    for cls in CLASSES:
        files = sorted((root / cls).glob("*.jpg"))
        for i in rng.choice(len(files), 7, replace=False):
            patches.append(cv2.imread(str(files[i]))[:, :, ::-1])
            truth.append(cls)
    order = rng.permutation(len(patches))
    img, centres = compose_real_field([patches[i] for i in order])
    truth = [truth[i] for i in order]
    field = tmp_path / "matek_composite.png"
    cv2.imwrite(str(field), img[:, :, ::-1])
    res = CliRunner().invoke(
        main, ["--log-level", "warning", "run", str(field), "-o", str(tmp_path / "out"), "--mpp", "0.0862"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out" / "matek_composite" / "report.json").read_text())
    assert report["input"]["mpp_source"] == "user"
    cells = pl.read_parquet(tmp_path / "out" / "matek_composite" / "cells.parquet")
    xy = cells.select("x", "y").to_numpy()
    found = correct = 0
    for (cx, cy), cls in zip(centres, truth, strict=True):
        d = np.hypot(xy[:, 0] - cx, xy[:, 1] - cy)
        near = np.flatnonzero(d < 5 / 0.0862)
        if len(near) == 1:
            found += 1
            correct += cells["predicted_class"][int(near[0])] == cls
    assert found / len(centres) >= 0.95  # each centre cell found exactly once
    assert correct / found >= 0.7  # the shipped model classifies real cells in a field context
