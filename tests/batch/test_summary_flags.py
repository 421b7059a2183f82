"""Summary rows and the index page carry indeterminate flags apart from raised ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from wsi_screen.batch.summary import report_figures
from wsi_screen.reports.index import index_row


def _report() -> dict:
    flags = [
        {"name": "blasts_ge_5pct", "status": "raised"},
        {"name": "blasts_ge_10pct", "status": "indeterminate"},
        {"name": "blasts_ge_20pct", "status": "not_raised"},
        {"name": "hairy_cells", "status": "not_assessable"},
    ]
    return {
        "cells_detected": 40,
        "cells_counted": 32,
        "blast": {"percent": 9.4, "ci95": [3.2, 24.2]},
        "flags": flags,
        "input": {"path": "/data/f.png", "kind": "field"},
    }


def test_summary_columns_separate_raised_and_indeterminate() -> None:
    fig = report_figures(_report())
    assert fig["flags_raised"] == "blasts_ge_5pct"
    assert fig["flags_indeterminate"] == "blasts_ge_10pct"


def test_index_row_lists_indeterminate_flags() -> None:
    row = index_row(Path("/out/f"), _report(), Path("/out"))
    assert row["raised"] == ["blasts_ge_5pct"]
    assert row["indeterminate"] == ["blasts_ge_10pct"]


def test_summary_csv_neutralises_formula_cells_and_review_still_finds_the_row(
    tmp_path: Path, run_batch_cli: Callable[..., Result]
) -> None:
    import csv
    import json

    import polars as pl
    from conftest import write_field

    from wsi_screen.batch.summary import spreadsheet_safe
    from wsi_screen.batch.summary import update_reviewed_input

    frame = pl.DataFrame({"input": ["=cmd|' -c calc'!A0.png", "-2+3.png", "ok.png"], "n": [1, 2, 3]})
    safe = spreadsheet_safe(frame)
    assert safe["input"].to_list() == ["'=cmd|' -c calc'!A0.png", "'-2+3.png", "ok.png"]
    assert safe["n"].to_list() == [1, 2, 3]  # numbers stay numbers

    folder = tmp_path / "in"
    folder.mkdir()
    write_field(folder / "=cmd|' -c calc'!A0.png", seed=0)
    out = tmp_path / "out"
    res = run_batch_cli(str(folder), "-o", str(out))
    assert res.exit_code == 0, res.output
    with (out / "summary.csv").open(newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["input"].startswith("'=cmd")  # text to a spreadsheet, not a formula
    assert pl.read_parquet(out / "summary.parquet")["input"][0].startswith("=cmd")  # data kept as is
    stem = row["output"].removeprefix("'").split("/")[0]
    report = json.loads((out / stem / "report.json").read_text())
    report["review"] = {"reviewer": "AB"}
    assert {p.name for p in update_reviewed_input(out, stem, report)} == {"summary.csv", "summary.parquet"}
