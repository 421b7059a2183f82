# ruff: noqa: F811  (fixtures imported from _fixtures are used as test parameters)
from __future__ import annotations

import json
from pathlib import Path

from _browser import run_chromium
from _fixtures import chromium  # noqa: F401 - pytest fixture
from click.testing import CliRunner

from wsi_screen.cli import main


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
            {"input_sha256": report["input"]["sha256"], "corrections": [{"cell_id": cid, "class": new_class}]}
        )
    )
    res = CliRunner().invoke(main, ["review", "apply", str(folder), str(corr), "--reviewer", "QA"])
    assert res.exit_code == 0, res.output
    reviewed = json.loads((folder / "report.json").read_text())
    assert reviewed["review"]["reviewer"] == "QA"
    assert reviewed["review"]["corrections"] == [
        {"cell_id": 0, "predicted_class": predicted, "reviewed_class": new_class}
    ]
    assert reviewed["cells_detected"] == report["cells_detected"]
    assert ">yes<" in (out / "index.html").read_text()
