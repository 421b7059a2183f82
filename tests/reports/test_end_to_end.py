# ruff: noqa: F811  (fixtures imported from _fixtures are used as test parameters)
from __future__ import annotations

import json
from pathlib import Path

import pytest
from _browser import run_chromium
from _fixtures import chromium  # noqa: F401 - pytest fixture
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.reports.corrections import screening_of


@pytest.fixture
def field_600(tmp_path: Path) -> Path:
    """A small synthetic field (about 6 cells) as PNG."""
    import cv2
    from _synthetic import grid_centres
    from _synthetic import synthetic_field

    img = synthetic_field(600, 500, grid_centres(600, 500, 200), seed=1)
    path = tmp_path / "field.png"
    cv2.imwrite(str(path), img[:, :, ::-1])
    return path


def _corrections(report: dict, corrections: list[dict], **extra: object) -> dict:
    """A corrections file in the documented format for the input of ``report``."""
    doc = {"format": "wsi-screen-corrections", "version": 1, "input_sha256": report["input"]["sha256"]}
    return {**doc, "corrections": corrections, **extra}


def test_run_writes_reports_geojson_index_then_review(
    tmp_path: Path, tiny_bundle: Path, pyramid_tiff: tuple, chromium
):
    import geopandas as gpd

    slide, centres, _ = pyramid_tiff
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["--log-level", "warning", "run", str(slide), "-o", str(out), "--model", str(tiny_bundle)]
    )
    assert res.exit_code == 0, res.output
    folder = out / "slide_a"
    report = json.loads((folder / "report.json").read_text())
    assert report["input"]["kind"] == "slide"
    assert len(gpd.read_file(folder / "cells.geojson")) == report["cells_detected"] == len(centres)
    index = (out / "index.html").read_text()
    assert 'href="slide_a/report.html"' in index
    page = run_chromium(chromium, folder / "report.html", tmp_path / "profile")
    assert page.console == []
    assert 'data-ready="1"' in page.dom

    import polars as pl

    classes = report["model"]["classes"]
    cid, predicted = 0, pl.read_parquet(folder / "cells.parquet")["predicted_class"][0]
    new_class = classes[(classes.index(predicted) + 1) % len(classes)]
    corr = tmp_path / "corrections.json"
    corr.write_text(
        json.dumps(
            _corrections(
                report,
                [{"cell_id": cid, "class": new_class, "predicted": predicted}],
                screening=screening_of(report),
            )
        )
    )
    res = CliRunner().invoke(main, ["review", "apply", str(folder), str(corr), "--reviewer", "QA"])
    assert res.exit_code == 0, res.output
    reviewed = json.loads((folder / "report.json").read_text())
    assert reviewed["review"]["reviewer"] == "QA"
    assert reviewed["review"]["corrections"] == [
        {"cell_id": 0, "kind": "reclassified", "predicted_class": predicted, "reviewed_class": new_class}
    ]
    assert reviewed["cells_detected"] == report["cells_detected"]
    assert ">yes<" in (out / "index.html").read_text()


def test_corrections_of_a_screening_at_another_pixel_size_are_refused(
    tmp_path: Path, tiny_bundle: Path, field_600: Path
):
    """Repro: corrections exported from ``run --mpp 100`` must not be applied to ``run --mpp 0.1``."""
    import re

    import polars as pl

    def run(mpp: str, out: Path) -> Path:
        argv = ["--log-level", "warning", "run", str(field_600), "--mpp", mpp, "-o", str(out)]
        res = CliRunner().invoke(main, [*argv, "--model", str(tiny_bundle), "--device", "cpu"])
        assert res.exit_code == 0, res.output
        return out / field_600.stem

    a, b = run("100", tmp_path / "A"), run("0.1", tmp_path / "B")
    report = json.loads((a / "report.json").read_text())
    pred_a = pl.read_parquet(a / "cells.parquet")["predicted_class"].to_list()
    pred_b = pl.read_parquet(b / "cells.parquet")["predicted_class"].to_list()
    cid = next(i for i, (x, y) in enumerate(zip(pred_a, pred_b, strict=False)) if x != y)
    classes = report["model"]["classes"]
    new_class = next(c for c in classes if c not in (pred_a[cid], pred_b[cid]))
    items = [{"cell_id": cid, "class": new_class, "predicted": pred_a[cid]}]
    block = re.search(r'id="screening-data">(.*?)</script>', (a / "report.html").read_text(), re.S)
    page_export = tmp_path / "page.json"  # as A's page exports it
    page_export.write_text(json.dumps(_corrections(report, items, screening=json.loads(block.group(1)))))
    hand_made = tmp_path / "hand.json"  # the documented format without the screening block
    hand_made.write_text(json.dumps(_corrections(report, items)))
    before = {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()}
    for corr, message in (
        (page_export, "pixel size (um/px) 100.0, this report 0.1"),
        (hand_made, f"cell {cid}"),
    ):
        res = CliRunner().invoke(main, ["review", "apply", str(b), str(corr)])
        assert res.exit_code == 2, res.output
        assert corr.name in res.output
        assert "another screening" in res.output
        assert message in res.output
        assert "Traceback" not in res.output
    assert {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()} == before
    res = CliRunner().invoke(main, ["review", "apply", str(a), str(page_export)])  # its own screening
    assert res.exit_code == 0, res.output
