"""A slide whose regions were all excluded says how many cells were detected, how many excluded, and why.

Before, a dense slide with every region excluded as clumped read "0 cells detected" on the console,
in report.json and on the page while the detector had found hundreds.
"""

from __future__ import annotations

import json
from pathlib import Path

import _regions_synthetic as rs
import polars as pl
from _synthetic import write_pyramidal_tiff
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.reports.excluded_cells import excluded_cells

MPP = 0.25
W, H = 1200, 800


def _report(statuses: list[tuple[str, list[str]]]) -> dict:
    regions = [{"id": k, "status": s, "reasons": r} for k, (s, r) in enumerate(statuses)]
    return {"qc": {"regions": {"decides_counting": True}}, "regions": regions, "cells_detected": 0}


def test_cells_of_excluded_regions_are_counted_by_reason() -> None:
    report = _report([("excluded", ["clumped"]), ("excluded", ["clumped", "thick"]), ("counted", [])])
    frame = pl.DataFrame({"region": [0, 0, 1, 2]})
    info = excluded_cells(report, frame)
    assert info == {"detected": 4, "n": 3, "by_reason": {"clumped": 3, "thick": 1}, "warning": None}
    info = excluded_cells(report, pl.DataFrame({"region": [0, 0, 1]}))
    assert info is not None and info["warning"].startswith("3 cell(s) detected, all 3 in regions excluded")
    assert "(clumped 3, thick 1)" in info["warning"]
    report["qc"]["regions"]["decides_counting"] = False  # a field: its regions are a quality check only
    assert excluded_cells(report, frame) is None


def test_a_slide_of_clumped_regions_warns_instead_of_zero_cells(tmp_path: Path, tiny_bundle: Path) -> None:
    layout = [[rs.clumped(W, H, mpp=MPP, seed=6)[0], rs.clumped(W, H, mpp=MPP, seed=8)[0]]]
    slide = write_pyramidal_tiff(tmp_path / "dense.tiff", rs.mosaic(layout), mpp=MPP, levels=3)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(slide), "-o", str(out), "--model", str(tiny_bundle)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "dense" / "report.json").read_text())
    info = report["qc"]["regions"]["excluded_cells"]
    n = pl.read_parquet(out / "dense" / "cells.parquet").height
    assert n > 0 and info["detected"] == n and info["n"] == n and info["by_reason"]["clumped"] > 0
    assert report["cells_detected"] == 0
    assert info["warning"] in report["warnings"]
    assert f"{n} cells detected ({n} in excluded regions: clumped" in res.output  # the ok line
    assert f"warning dense.tiff: {n} cell(s) detected, all {n} in regions excluded" in res.output
    page = (out / "dense" / "report.html").read_text()
    banner = page[page.index('id="banner"') : page.index("</div>", page.index('id="banner"'))]
    assert f"all {n} in regions excluded from the count" in banner and "hidden" not in banner.split(">")[0]
    assert 'id="excluded-cells"' in page
