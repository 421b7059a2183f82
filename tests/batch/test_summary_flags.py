"""Summary rows and the index page carry indeterminate flags apart from raised ones."""

from __future__ import annotations

from pathlib import Path

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
