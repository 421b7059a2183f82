from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest
from _helpers import match_centres
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.reports.json_report import validate_report


def run_cli(*args: str) -> object:
    return CliRunner().invoke(main, ["--log-level", "warning", "run", *args], catch_exceptions=False)


def test_run_on_field_and_slide(
    tmp_path: Path, tiny_bundle: Path, field_2452: tuple, pyramid_tiff: tuple
) -> None:
    field, centres = field_2452
    slide, slide_centres, mpp = pyramid_tiff
    out = tmp_path / "out"
    res = run_cli(str(field), str(slide), "-o", str(out), "--model", str(tiny_bundle), "--batch-size", "16")
    assert res.exit_code == 0, res.output
    for stem, truth, want_mpp, src in [
        ("field_a", centres, 0.0862, "model_default"),
        ("slide_a", slide_centres, mpp, "file"),
    ]:
        report = json.loads((out / stem / "report.json").read_text())
        validate_report(report)
        assert report["input"]["mpp_source"] == src
        assert report["input"]["mpp"] == pytest.approx(want_mpp, rel=1e-3)
        assert report["cells_detected"] == len(truth)
        assert report["model"]["classes"][1] == "BLA"
        assert "not a diagnosis" in report["disclaimer"]
        assert report["config"]["aggregate"]["blast_classes"] == ["BLA"]
        assert {"read", "detect", "classify"} <= set(report["timings_s"])
        cells = pl.read_parquet(out / stem / "cells.parquet")
        assert cells.height == len(truth)
        assert {
            "cell_id",
            "x",
            "y",
            "bbox_x0",
            "detector_score",
            "predicted_class",
            "confidence",
            "prob_BLA",
        } <= set(cells.columns)
        np.testing.assert_allclose(cells.select(pl.col("^prob_.*$")).to_numpy().sum(axis=1), 1.0, atol=1e-3)
        hits, multi, extra = match_centres(cells.select("x", "y").rows(), truth, radius=40)
        assert (hits, multi, extra) == (len(truth), 0, 0)
        assert (out / stem / "report.html").stat().st_size > 500
    assert "no pixel size" in " ".join(json.loads((out / "field_a" / "report.json").read_text())["warnings"])


def test_mpp_option_used_when_file_has_none(tmp_path: Path, tiny_bundle: Path) -> None:
    img = np.full((400, 500, 3), 235, np.uint8)
    cv2.imwrite(str(tmp_path / "blank.png"), img)
    res = run_cli(
        str(tmp_path / "blank.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_bundle), "--mpp", "0.25"
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o" / "blank" / "report.json").read_text())
    assert (report["input"]["mpp"], report["input"]["mpp_source"]) == (0.25, "user")
    assert report["cells_detected"] == 0  # a field without cells is a valid, empty report
    assert pl.read_parquet(tmp_path / "o" / "blank" / "cells.parquet").height == 0


def test_bad_inputs_fail_alone_with_a_named_one_line_error(
    tmp_path: Path, tiny_bundle: Path, field_2452: tuple
) -> None:
    good, _ = field_2452
    data = good.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 3])
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.tiff").write_text("hello")
    gray = tmp_path / "gray16.png"
    cv2.imwrite(str(gray), np.full((300, 300), 60000, np.uint16))
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.dstack([cv2.imread(str(good))[:600, :600], np.full((600, 600), 255, np.uint8)]))
    args = [
        str(p)
        for p in (tmp_path / "trunc.png", tmp_path / "zero.png", tmp_path / "text.tiff", good, gray, rgba)
    ]
    res = CliRunner().invoke(
        main, ["--log-level", "error", "run", *args, "-o", str(tmp_path / "o"), "--model", str(tiny_bundle)]
    )
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    failed = [line for line in res.output.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 3
    for name in ("trunc.png", "zero.png", "text.tiff"):
        assert any(name in line for line in failed)
        assert not (tmp_path / "o" / Path(name).stem / "report.json").exists()
    for stem in ("field_a", "gray16", "rgba"):
        validate_report(json.loads((tmp_path / "o" / stem / "report.json").read_text()))
    assert "3 of 6 input(s) failed" in res.output


def test_usage_errors_exit_2(tmp_path: Path, tiny_bundle: Path, field_2452: tuple) -> None:
    field, _ = field_2452
    res = CliRunner().invoke(
        main, ["run", str(field), "-o", str(tmp_path), "--model", str(tmp_path / "nope")]
    )
    assert res.exit_code == 2 and "not a bundle folder" in res.output
    res = CliRunner().invoke(
        main, ["run", str(field), "-o", str(tmp_path), "--model", str(tiny_bundle), "--detector", "nope"]
    )
    assert res.exit_code == 2 and "unknown detector" in res.output
    bad = tmp_path / "c.toml"
    bad.write_text("[aggregate]\nmin_cells = 0\n")
    res = CliRunner().invoke(
        main, ["run", str(field), "-o", str(tmp_path), "--model", str(tiny_bundle), "--config", str(bad)]
    )
    assert res.exit_code == 2 and "aggregate.min_cells" in res.output
    bad.write_text('[aggregate]\nexcluded_classes = ["art", "NIF"]\n')
    res = CliRunner().invoke(
        main, ["run", str(field), "-o", str(tmp_path), "--model", str(tiny_bundle), "--config", str(bad)]
    )
    assert res.exit_code == 2 and "'art'" in res.output and str(bad) in res.output
    fresh = tmp_path / "never-created"
    res = CliRunner().invoke(main, ["run", str(field), "-o", str(fresh), "--model", str(tmp_path / "nope")])
    assert res.exit_code == 2 and not fresh.exists()  # a usage error leaves no empty output folder
    res = CliRunner().invoke(main, ["run", str(field), "-o", str(tmp_path), "--mpp", "nan"])
    assert res.exit_code == 2 and "not a finite number" in res.output


def test_unwritable_output_folder_is_refused_before_screening(tmp_path: Path, tiny_bundle: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    garbage = tmp_path / "never.png"  # would fail at read: the folder check must come first
    garbage.write_text("not an image")
    for cmd in (["run", str(garbage)], ["batch", str(tmp_path)]):
        res = CliRunner().invoke(main, [*cmd, "-o", str(blocker / "out"), "--model", str(tiny_bundle)])
        assert res.exit_code == 2, res.output
        assert "output folder cannot be written" in res.output and str(blocker / "out") in res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)


def test_help_is_fast_and_lists_commands() -> None:
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0 and "run" in res.output


def test_missing_input_is_a_usage_error_naming_the_file(tmp_path: Path, tiny_bundle: Path) -> None:
    missing = tmp_path / "no-such-field.png"
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(missing), "-o", str(out), "--model", str(tiny_bundle)])
    assert res.exit_code == 2, res.output
    assert str(missing) in res.output and "does not exist" in res.output
    assert not out.exists()  # refused before anything is written


def test_output_folder_is_required(tmp_path: Path, field_2452: tuple) -> None:
    field, _ = field_2452
    for cmd in ("run", "batch"):
        res = CliRunner().invoke(main, [cmd, str(field if cmd == "run" else tmp_path)])
        assert res.exit_code == 2 and "Missing option '-o' / '--output'" in res.output


def test_deprecated_out_still_works_and_warns(tmp_path: Path, tiny_bundle: Path) -> None:
    img = tmp_path / "blank.png"
    cv2.imwrite(str(img), np.full((300, 300, 3), 235, np.uint8))
    out = tmp_path / "old"
    res = CliRunner().invoke(
        main, ["--log-level", "warning", "run", str(img), "--out", str(out), "--model", str(tiny_bundle)]
    )
    assert res.exit_code == 0, res.output
    assert "--out is deprecated" in res.stderr and "-o/--output" in res.stderr
    assert "--out is deprecated" not in res.stdout
    validate_report(json.loads((out / "blank" / "report.json").read_text()))
    assert f"{out / 'blank'}/ (report.json, report.html, cells.parquet, cells.geojson" in res.stdout
    # the new spelling does not warn
    res = CliRunner().invoke(
        main,
        ["--log-level", "warning", "run", str(img), "-o", str(tmp_path / "new"), "--model", str(tiny_bundle)],
    )
    assert res.exit_code == 0 and "is deprecated" not in res.output
