"""Failures the fuzz batch found: each is a one-line error for its own input, never a crash."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile

from wsi_screen.reports.audit_anchor import read_anchor
from wsi_screen.reports.corrections import ReviewError
from wsi_screen.reports.review_files import load_cells


def _wide_tiff(path: Path) -> Path:
    """A 200 KB tiled TIFF whose tags declare one level of 400,000 x 1,156 px (under max_slide_pixels; the fuzz batch found 6,452,144 px)."""
    img = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    tifffile.imwrite(
        path, img, tile=(128, 128), photometric="rgb", resolution=(40000, 40000), resolutionunit="CENTIMETER"
    )
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tags = tif.pages[0].tags
        tags["ImageWidth"].overwrite(400_000)
        tags["ImageLength"].overwrite(1156)
    return path


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def test_a_level_without_a_coarser_one_cannot_make_region_reads_allocate_gigabytes(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    wide = _wide_tiff(tmp_path / "wide.tif")
    out = tmp_path / "o"
    proc = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [
            sys.executable,
            "-c",
            "from wsi_screen.cli import main; main()",
            "run",
            str(wide),
            "-o",
            str(out),
            "--model",
            str(tiny_bundle),
            "--mpp",
            "0.25",
            "--device",
            "cpu",
            "--input-timeout",
            "120",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_memory,  # noqa: PLW1509 - a child that would run away fails instead
        check=False,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "Traceback" not in text and "MemoryError" not in text
    assert "region may hold" in text


def test_a_deeply_nested_anchor_line_is_an_altered_anchor(tmp_path: Path) -> None:
    (tmp_path / "audit-anchor.jsonl").write_text("[" * 100_000 + "\n", encoding="utf-8")
    from wsi_screen.reports.audit import AuditError

    with pytest.raises(AuditError, match="line 1 is not an audit anchor record"):
        read_anchor(tmp_path)


def test_a_table_polars_panics_on_is_a_review_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cells.parquet"
    path.write_bytes(b"PAR1 damaged PAR1")

    def panic(*_a: object, **_k: object) -> None:
        msg = "assertion failed: offset + length <= self.length"
        raise pl.exceptions.PanicException(msg)

    monkeypatch.setattr(pl, "read_parquet", panic)
    with pytest.raises(ReviewError, match="cannot read the cells table"):
        load_cells(path, ["BLA"], ["BLA"])
