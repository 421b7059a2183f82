"""Report wording that said the wrong thing: a passed artefact check asking to check the smear, "1 cells"."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsi_screen.aggregate import summarize
from wsi_screen.config import AggregateConfig
from wsi_screen.item_reports import InputOutcome

CLASSES = ("ART", "BLA", "LYT", "NGS")


def _artefact_flag(n_art: int) -> dict:
    labels = ["ART"] * n_art + ["NGS"] * (100 - n_art)
    probs = np.eye(len(CLASSES), dtype=np.float32)[[CLASSES.index(c) for c in labels]]
    s = summarize(labels, probs, CLASSES, AggregateConfig(min_cells=10))
    return next(f for f in s["flags"] if f["name"] == "many_artefacts")


def test_the_artefact_flag_asks_to_check_the_smear_only_when_raised() -> None:
    ok = _artefact_flag(5)
    assert ok["status"] == "not_raised" and "check the smear" not in ok["message"]
    assert ok["message"].endswith(": within 25 %")
    bad = _artefact_flag(40)
    assert bad["status"] == "raised" and bad["message"].endswith("check the smear and focus")


def test_one_cell_is_one_cell() -> None:
    report = {"cells_detected": 1, "cells_counted": 1, "blast": {"percent": 0.0}, "flags": [], "qc": {}}
    line = InputOutcome(Path("a.png"), Path("out/a"), None, report, 0.1).summary_line
    assert line.startswith("1 cell detected, 1 counted")
