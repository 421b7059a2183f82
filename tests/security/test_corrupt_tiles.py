"""Corrupt tiles inside a valid pyramid are skipped and counted; too many fail the input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _synthetic import grid_centres
from _synthetic import synthetic_field
from _synthetic import write_pyramidal_tiff
from click.testing import CliRunner

from wsi_screen.cli import main

MPP = 0.12


def _corrupt(path: Path, tiles: list[int]) -> None:
    """Overwrite the compressed bytes of level-0 tiles ``tiles`` with garbage."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        spans = [(page.dataoffsets[k], page.databytecounts[k]) for k in tiles]
    with path.open("r+b") as f:
        for offset, count in spans:
            f.seek(offset)
            f.write(b"\x13\x37" * (count // 2))


@pytest.fixture
def slide(tmp_path: Path) -> Path:
    centres = grid_centres(3000, 2600, 230)
    img = synthetic_field(3000, 2600, centres, mpp=MPP, seed=5)
    return write_pyramidal_tiff(tmp_path / "slide.tiff", img, mpp=MPP)


def _run(slide: Path, out: Path, bundle: Path, *extra: str) -> tuple[int, str]:
    args = ["run", str(slide), "-o", str(out), "--model", str(bundle), "--device", "cpu", *extra]
    res = CliRunner().invoke(main, args)
    return res.exit_code, res.output


def test_one_corrupt_tile_is_skipped_and_counted(slide: Path, tmp_path: Path, tiny_bundle: Path) -> None:
    code, output = _run(slide, tmp_path / "clean", tiny_bundle)
    assert code == 0, output
    clean = json.loads((tmp_path / "clean" / "slide" / "report.json").read_text())
    _corrupt(slide, [60])  # one 256 px tile of 12 x 11 in the middle of the slide
    cfg = tmp_path / "c.toml"
    cfg.write_text("[tiling]\ntile_size_px = 512\n[limits]\nmax_unreadable_tile_fraction = 0.2\n")
    code, output = _run(slide, tmp_path / "o", tiny_bundle, "--config", str(cfg))
    assert code == 0, output
    report = json.loads((tmp_path / "o" / "slide" / "report.json").read_text())
    u = report["qc"]["unreadable_tiles"]
    assert u["tiles"] >= 1 and 0 < u["fraction"] <= 0.2
    assert 0 < report["qc"]["cells_detected"] < clean["qc"]["cells_detected"]
    assert "unreadable_tiles" not in clean["qc"]


def test_too_many_corrupt_tiles_fail_the_input(slide: Path, tmp_path: Path, tiny_bundle: Path) -> None:
    _corrupt(slide, list(np.arange(0, 130, 3)))
    code, output = _run(slide, tmp_path / "o", tiny_bundle)
    assert code == 1, output
    assert "tiles unreadable" in output and "max_unreadable_tile_fraction" in output
