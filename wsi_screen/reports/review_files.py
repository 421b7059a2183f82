"""The files of a report folder a review reads and writes: report.json, cells.parquet, the re-rendered page.

:func:`load_report` and :func:`load_cells` check what a review relies on before anything is
computed; :func:`write_reviewed` writes the reviewed files all or nothing, report.json last.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import polars as pl

from wsi_screen.config import AggregateConfig
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_path
from wsi_screen.report_files import CELLS_GEOJSON
from wsi_screen.report_files import CELLS_PARQUET
from wsi_screen.report_files import REPORT_HTML
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.assets import ReportAssets
from wsi_screen.reports.assets import ReportOptions
from wsi_screen.reports.cells_check import RECORD_KEY
from wsi_screen.reports.cells_check import cells_record
from wsi_screen.reports.cells_table import write_cells_parquet
from wsi_screen.reports.corrections import ReviewError
from wsi_screen.reports.corrections import read_report
from wsi_screen.reports.deepzoom import read_deep_zoom
from wsi_screen.reports.geojson import write_cells_geojson
from wsi_screen.reports.html_report import aggregate_config
from wsi_screen.reports.html_report import write_report_html
from wsi_screen.reports.json_report import validate_report
from wsi_screen.reports.json_report import write_report_json
from wsi_screen.reports.reviewed import ORIGIN_REVIEWER
from wsi_screen.reports.reviewed import REMOVAL_REASONS
from wsi_screen.reports.reviewed import REVIEW_COLUMNS
from wsi_screen.reports.reviewed import with_review_columns


def load_report(path: Path) -> tuple[dict[str, Any], AggregateConfig]:
    """Read report.json and check it is a wsi-screen report (its schema and its echoed config).

    Raises:
        ReviewError: missing, unreadable or of another structure; the message names the file.
    """
    report = read_report(path)
    if not isinstance(report, dict):
        msg = f"{path}: expected a JSON object (a wsi-screen report.json), got {type(report).__name__}"
        raise ReviewError(msg)
    try:
        validate_report(report)
        cfg = aggregate_config(report)
    except WsiScreenError as e:
        msg = f"{path}: {e}"
        raise ReviewError(msg) from e
    return report, cfg


def load_cells(path: Path, names: list[str], allowed: list[str]) -> pl.DataFrame:
    """Read cells.parquet and check the columns and values a review uses.

    Raises:
        ReviewError: unreadable, a column missing, of the wrong type or with values this report's
            model does not have; the message names the file.
    """
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as e:
        msg = f"{path}: cannot read the cells table: {e}"
        raise ReviewError(msg) from e
    kinds = {"cell_id": "integer", "predicted_class": "string"}
    numeric = [
        "x",
        "y",
        "bbox_x0",
        "bbox_y0",
        "bbox_x1",
        "bbox_y1",
        "confidence",
        *(f"prob_{c}" for c in names),
    ]
    kinds.update(dict.fromkeys(numeric, "numeric"))
    kinds.update({c: "string" for c in REVIEW_COLUMNS if c in frame.columns})
    missing = [c for c in kinds if c not in frame.columns]
    if missing:
        msg = f"{path}: column(s) {', '.join(missing)} missing; not the cells table of this report"
        raise ReviewError(msg)
    for col, kind in kinds.items():
        dtype = frame.schema[col]
        ok = {"integer": dtype.is_integer(), "numeric": dtype.is_numeric(), "string": dtype == pl.String}
        if not ok[kind]:
            msg = f"{path}: column {col} must be {kind}, found {dtype}"
            raise ReviewError(msg)
        nullable = col in REVIEW_COLUMNS or (col == "predicted_class" and "origin" in frame.columns)
        if not nullable and frame[col].null_count():
            msg = f"{path}: column {col} has empty values"
            raise ReviewError(msg)
    if frame["cell_id"].n_unique() != frame.height:
        msg = f"{path}: cell ids are not unique"
        raise ReviewError(msg)
    frame = with_review_columns(frame)
    unset = frame.filter(pl.col("predicted_class").is_null() & (pl.col("origin") != ORIGIN_REVIEWER)).height
    if unset:
        msg = f"{path}: column predicted_class has empty values"
        raise ReviewError(msg)
    bad_removed = set(frame["removed"].drop_nulls().to_list()) - set(REMOVAL_REASONS)
    if bad_removed:
        msg = f"{path}: column removed has value(s) {', '.join(sorted(bad_removed)[:5])}; expected {', '.join(REMOVAL_REASONS)}"
        raise ReviewError(msg)
    for col, known in (("predicted_class", names), ("reviewed_class", allowed)):
        if col in frame.columns:
            unknown = sorted(set(frame[col].drop_nulls().to_list()) - set(known))
            if unknown:
                msg = f"{path}: {col} has class(es) {', '.join(unknown[:10])} that this report does not have"
                raise ReviewError(msg)
    return frame


def write_reviewed(
    report_dir: Path,
    report: dict[str, Any],
    frame: pl.DataFrame,
    names: list[str],
    assets: ReportAssets,
    options: ReportOptions | None,
) -> None:
    """Write the reviewed files all or nothing, report.json (the completion marker) last.

    Every file is first rendered and validated into a temp file; nothing in the folder changes
    until all of them are complete. Then the old report.json is removed and the temp files are
    renamed into place, report.json last, so a kill in that short window leaves a folder without
    report.json (unfinished), never a reviewed cells table beside an unreviewed report.

    Raises:
        ReviewError: a file cannot be written; the folder is then unchanged.
    """
    try:
        with contextlib.ExitStack() as stack:
            # exit order is the reverse of entry: report.json is renamed into place last
            tmp_json = stack.enter_context(atomic_path(report_dir / REPORT_JSON))
            tmp_html = stack.enter_context(atomic_path(report_dir / REPORT_HTML))
            tmp_geojson = stack.enter_context(atomic_path(report_dir / CELLS_GEOJSON))
            tmp_parquet = stack.enter_context(atomic_path(report_dir / CELLS_PARQUET))
            write_cells_parquet(frame, tmp_parquet)
            report[RECORD_KEY] = cells_record(tmp_parquet, frame.height)
            write_cells_geojson(frame, names, tmp_geojson)
            write_report_html(
                report,
                tmp_html,
                frame=frame,
                assets=assets,
                options=options,
                viewer=read_deep_zoom(report_dir),
            )
            write_report_json(report, tmp_json)
            (report_dir / REPORT_JSON).unlink(missing_ok=True)
    except OSError as e:
        msg = f"{report_dir}: cannot write the reviewed report: {e}"
        raise ReviewError(msg) from e
