"""The cells table a report was computed from: report.json records its sha256, and a review checks it.

A review recomputes every figure from cells.parquet, so the table beside report.json must be the
one the report was made from: another table (a swapped file turned 12.5 % blasts into 100 %) is
refused. report.json's ``cells_table`` (``sha256``, ``rows``) is written with the table by the
screening, a case and every review. A report written before the record existed is checked by its
figures instead: the table's cells per class must be the report's.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from wsi_screen.errors import WsiScreenError
from wsi_screen.io import sha256_now
from wsi_screen.report_files import CELLS_PARQUET

RECORD_KEY = "cells_table"


class CellsTableError(WsiScreenError):
    """cells.parquet is not the table its report.json was computed from; the message names it."""

    stage = "review"


def cells_record(path: Path, rows: int) -> dict[str, Any]:
    """What report.json records of the cells table written at ``path`` (its ``cells_table``)."""
    return {"file": CELLS_PARQUET, "sha256": sha256_now(path), "rows": int(rows)}


def check_cells_table(report: dict[str, Any], path: Path, frame: pl.DataFrame, labels: list[str]) -> None:
    """Check that ``frame`` (read from ``path``) is the cells table ``report`` was computed from.

    Args:
        report: report.json as read.
        path: the cells.parquet beside it.
        frame: the table read from ``path``.
        labels: the final class of each cell that feeds the figures (the table as it is, before
            this review's edits): the check of a report without a recorded sha256.

    Raises:
        CellsTableError: the sha256 differs from the recorded one, or (no record) the table's cells
            per class are not the report's.
    """
    record = report.get(RECORD_KEY)
    if isinstance(record, dict) and isinstance(record.get("sha256"), str):
        if sha256_now(path) != record["sha256"]:
            msg = (
                f"{path}: not the cells table of report.json (its sha256 differs from the one the "
                f"report recorded): the table was replaced or altered; nothing applied"
            )
            raise CellsTableError(msg)
        return
    if record is not None:
        msg = f"{path.with_name('report.json')}: '{RECORD_KEY}' must be an object with the table's sha256"
        raise CellsTableError(msg)
    ours = Counter(labels)
    theirs = {c: int(v.get("count", 0)) for c, v in {**report.get("differential", {}), **report.get("excluded", {})}.items()}  # fmt: skip
    differ = sorted(c for c in set(ours) | set(theirs) if ours.get(c, 0) != theirs.get(c, 0))
    if len(labels) != report.get("cells_detected") or differ:
        shown = ", ".join(f"{c} {theirs.get(c, 0)} vs {ours.get(c, 0)}" for c in differ[:5])
        msg = (
            f"{path}: not the cells table of report.json ({report.get('cells_detected')} cells in the "
            f"report, {len(labels)} in the table{'; ' + shown if shown else ''}): the table was replaced; nothing applied"
        )
        raise CellsTableError(msg)
