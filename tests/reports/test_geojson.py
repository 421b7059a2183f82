# ruff: noqa: F811  (fixtures imported from _fixtures are used as test parameters)
from __future__ import annotations

import json

import polars as pl
from _fixtures import fake_out  # noqa: F401 - pytest fixture


def test_geojson_round_trip(fake_out):
    import geopandas as gpd

    out, report = fake_out
    gdf = gpd.read_file(out / "cells.geojson").set_crs(None, allow_override=True)  # pixels, not degrees
    frame = pl.read_parquet(out / "cells.parquet")
    assert len(gdf) == report["cells_detected"] == frame.height
    assert (gdf.geom_type == "Polygon").all()
    cent = gdf.geometry.centroid
    assert abs(cent.x.to_numpy() - frame["x"].to_numpy()).max() < 1.0
    assert abs(cent.y.to_numpy() - frame["y"].to_numpy()).max() < 1.0
    raw = json.loads((out / "cells.geojson").read_text())
    props = [f["properties"] for f in raw["features"]]
    assert {p["objectType"] for p in props} == {"detection"}
    assert [p["classification"]["name"] for p in props] == frame["predicted_class"].to_list()
    assert all(len(p["classification"]["color"]) == 3 for p in props)
    conf = frame["confidence"].to_list()
    assert all(abs(p["measurements"]["probability"] - c) < 1e-3 for p, c in zip(props, conf, strict=True))
    assert all(f"prob {c}" in props[0]["measurements"] for c in report["model"]["classes"])


def test_geojson_empty(tmp_path):
    from wsi_screen.reports.geojson import write_cells_geojson

    frame = pl.DataFrame({"cell_id": [], "x": [], "y": [], "bbox_x0": [], "bbox_y0": [], "bbox_x1": [],
                          "bbox_y1": [], "predicted_class": [], "confidence": []})  # fmt: skip
    write_cells_geojson(frame, ["BLA"], tmp_path / "c.geojson")
    assert json.loads((tmp_path / "c.geojson").read_text())["features"] == []
