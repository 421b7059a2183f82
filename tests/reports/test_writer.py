"""The per-input writer: report.json marks a complete folder, so a rewrite removes it first."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from _fake import write_fake_report

import wsi_screen.reports.writer as writer


def test_interrupted_rewrite_leaves_no_report_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "field.png"
    src.write_bytes(b"fake input")
    out = tmp_path / "OUT" / "field"
    write_fake_report(out, src, n_cells=30, seed=1)
    assert (out / "report.json").is_file()

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # a redo stopped after cells.parquet, before the other files

    monkeypatch.setattr(writer, "write_cells_geojson", killed)
    with pytest.raises(KeyboardInterrupt):
        write_fake_report(out, src, n_cells=40, seed=2)
    assert pl.read_parquet(out / "cells.parquet").height == 40  # new cells ...
    assert not (out / "report.json").exists()  # ... never beside the old report
