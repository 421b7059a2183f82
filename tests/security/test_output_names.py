"""Input names cannot put outputs outside OUT or in place of OUT's own files (run and batch alike)."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from wsi_screen.batch.discover import batch_stems
from wsi_screen.cli import main
from wsi_screen.pipeline import unique_stems

FIELD = Path(__file__).resolve().parents[2] / "examples" / "data" / "synthetic_field.jpg"


def test_run_keeps_a_dot_dot_stem_inside_out(tmp_path: Path, tiny_bundle: Path) -> None:
    """``...png`` has the stem ``..``: -o D/out once overwrote D/report.json."""
    d = tmp_path / "D"
    d.mkdir()
    shutil.copy(FIELD, d / "...png")
    shutil.copy(FIELD, d / "summary.csv.png")  # would take the place of OUT/summary.csv
    out = d / "out"
    args = ["run", str(d / "...png"), str(d / "summary.csv.png"), "-o", str(out)]
    res = CliRunner().invoke(main, [*args, "--model", str(tiny_bundle), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert not (d / "report.json").exists() and not (d / "cells.parquet").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["input", "summary.csv_"]
    assert (out / "input" / "report.json").is_file()


def test_run_and_batch_name_alike() -> None:
    names = ["...png", "a b.png", "batch.log.tif", ".hidden.png", "\x1b[31m.png"]
    assert unique_stems([Path(n) for n in names]) == batch_stems(names)
    for stem in batch_stems(names):
        assert stem and not stem.startswith(".") and "/" not in stem and "\x1b" not in stem
