"""A write that fails (disk full) names the path, costs only its input and leaves no partial report."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.io import is_temp_file
from wsi_screen.reports import writer

FIELD = Path(__file__).resolve().parents[2] / "examples" / "data" / "synthetic_field.jpg"


def test_disk_full_while_writing_a_report(
    tmp_path: Path, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(FIELD, tmp_path / name)
    real = writer.write_cells_geojson
    calls = {"n": 0}

    def full(frame: Any, classes: Any, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # the first input's GeoJSON does not fit on the disk
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(frame, classes, path)

    monkeypatch.setattr(writer, "write_cells_geojson", full)
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "-o", str(out)]
    res = CliRunner().invoke(main, [*args, "--model", str(tiny_bundle), "--device", "cpu"])
    assert res.exit_code == 1, res.output
    assert "[report]" in res.output and "No space left on device" in res.output
    assert str(out / "a" / "cells.geojson") in res.output  # the path that could not be written
    assert not (out / "a").exists()  # no cells.parquet without its report.json
    assert (out / "b" / "report.json").is_file()
    assert not [p for p in out.rglob("*") if is_temp_file(p)]
