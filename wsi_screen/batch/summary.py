"""The batch summary: one row per input, written as OUT/summary.csv and OUT/summary.parquet."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from wsi_screen.batch.discover import BatchInput
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_write_text
from wsi_screen.io import atomic_write_with
from wsi_screen.report_files import MAX_REPORT_JSON_BYTES
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.textfiles import check_size
from wsi_screen.textfiles import read_json_object
from wsi_screen.textsafe import FORMULA_START_RE
from wsi_screen.textsafe import csv_cell
from wsi_screen.types import Failure

if TYPE_CHECKING:
    import polars as pl

    from wsi_screen.batch.options import BatchOptions

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_NOT_RUN = "not_run"  # --fail-fast (or Ctrl-C) stopped the batch before this input
STATUS_SKIPPED = "skipped"  # not an input: a sidecar beside the images, a folder without fields

TIMING_STAGES = ("read", "detect", "patch", "classify", "aggregate", "report", "total")

# column -> polars dtype name; fixed so that all-null columns keep their type
SUMMARY_SCHEMA: dict[str, str] = {
    "input": "str",
    "status": "str",
    "error_stage": "str",
    "error_type": "str",
    "error_message": "str",
    "output": "str",
    "cells_detected": "int",
    "cells_counted": "int",
    "blast_percent": "float",
    "blast_ci95_low": "float",
    "blast_ci95_high": "float",
    "flags_raised": "str",
    "mpp": "float",
    "mpp_source": "str",
    "input_sha256": "str",
    **{f"time_{s}_s": "float" for s in TIMING_STAGES},
    "reviewed": "bool",  # columns added later go last, keeping the positions of the earlier ones
    "flags_indeterminate": "str",
    "domain": "str",  # in_domain, out_of_domain, borderline, not_assessed (qc.domain.status)
    "domain_score": "float",
}
TIMING_COLUMNS = tuple(f"time_{s}_s" for s in TIMING_STAGES)
SUMMARY_PARQUET = "summary.parquet"
SUMMARY_CSV = "summary.csv"
MAX_SUMMARY_BYTES = 256 << 20  # the largest summary.parquet / summary.csv read back (100,000s of rows)


class SummaryError(WsiScreenError):
    """OUT/summary.parquet or OUT/summary.csv cannot be read or written; the message names it."""

    stage = "summary"


def report_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The summary columns that a review changes, from report.json content."""
    blast = report.get("blast") or {}
    ci = blast.get("ci95") or [None, None]
    raised = [f["name"] for f in report.get("flags", []) if f.get("status") == "raised"]
    undecided = [f["name"] for f in report.get("flags", []) if f.get("status") == "indeterminate"]
    return {
        "cells_detected": report.get("cells_detected"),
        "cells_counted": report.get("cells_counted"),
        "blast_percent": blast.get("percent"),
        "blast_ci95_low": ci[0],
        "blast_ci95_high": ci[1],
        "flags_raised": ";".join(raised),
        "reviewed": "review" in report,
        "flags_indeterminate": ";".join(undecided),
        "domain": (domain := (report.get("qc") or {}).get("domain") or {}).get("status"),
        "domain_score": domain.get("score"),
    }


def ok_row(item: BatchInput, report: dict[str, Any]) -> dict[str, Any]:
    """Summary row of a screened input, from its report.json content (reviewed figures after a review)."""
    timings = report.get("timings_s") or {}
    row = _empty_row(item, STATUS_OK)
    row.update(
        output=f"{item.stem}/report.json",
        **report_figures(report),
        mpp=report.get("input", {}).get("mpp"),
        mpp_source=report.get("input", {}).get("mpp_source"),
        input_sha256=report.get("input", {}).get("sha256"),
        **{f"time_{s}_s": timings.get(s) for s in TIMING_STAGES},
    )
    return row


def failed_row(
    item: BatchInput, failure: Failure, seconds: float | None, input_sha256: str | None
) -> dict[str, Any]:
    """Summary row of an input that failed, naming the stage and the error."""
    row = _empty_row(item, STATUS_FAILED)
    row.update(
        error_stage=failure.stage,
        error_type=failure.error_type,
        error_message=failure.message,
        input_sha256=input_sha256,
        time_total_s=None if seconds is None else round(seconds, 4),
    )
    return row


def not_run_row(item: BatchInput, reason: str, status: str = STATUS_NOT_RUN) -> dict[str, Any]:
    """Summary row of an input the batch did not reach (``--fail-fast`` or Ctrl-C), or skipped."""
    row = _empty_row(item, status)
    row["error_message"] = reason
    return row


def _empty_row(item: BatchInput, status: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SUMMARY_SCHEMA)
    row["input"] = item.name
    row["status"] = status
    return row


def _schema() -> dict[str, pl.DataType]:
    import polars as pl

    types = {"str": pl.String(), "int": pl.Int64(), "float": pl.Float64(), "bool": pl.Boolean()}
    return {k: types[v] for k, v in SUMMARY_SCHEMA.items()}


def _frame(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame([{k: r.get(k) for k in SUMMARY_SCHEMA} for r in rows], schema=_schema(), orient="row")


def write_summary(rows: Sequence[dict[str, Any]], out: Path) -> None:
    """Write OUT/summary.parquet and OUT/summary.csv atomically, rows in input order."""
    frame = _frame(rows)
    atomic_write_with(out / SUMMARY_PARQUET, lambda p: frame.write_parquet(p))
    text = spreadsheet_safe(frame)
    atomic_write_with(out / SUMMARY_CSV, lambda p: text.write_csv(p))


def spreadsheet_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell that a spreadsheet would run as a formula made text.

    A cell starting with ``= + - @`` (or a tab or carriage return), e.g. an input named
    ``=cmd|' -c calc'!A0.png``, gets a leading ``'`` (:func:`wsi_screen.textsafe.csv_cell`);
    summary.parquet keeps the values as they are.
    """
    import polars as pl

    cols = [c for c, t in frame.schema.items() if t == pl.String]
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START_RE))
        .then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in cols
    )


def update_reviewed_input(out: Path, folder: str, report: dict[str, Any]) -> list[Path]:
    """Put the reviewed figures of OUT/<folder>/ into its row of OUT/summary.parquet and summary.csv.

    Only that row's figures change (cells, blast % and interval, raised and indeterminate flags,
    ``reviewed``); every
    other row and column is kept as it was, and a summary written before the ``reviewed`` column
    existed gains it. Each file is rewritten atomically; a missing file, or one without a row for
    that folder and input, is left alone.

    Returns:
        The summary files rewritten.

    Raises:
        SummaryError: a summary file cannot be read or written (the other one is still updated);
            the one-line message names it.
    """
    output = f"{folder}/{REPORT_JSON}"
    sha = report.get("input", {}).get("sha256")
    figures = report_figures(report)
    done, errors = [], []
    for name in (SUMMARY_PARQUET, SUMMARY_CSV):
        path = out / name
        try:
            if path.is_file() and _update_file(path, output, sha, figures):
                done.append(path)
        except SummaryError as e:
            errors.append(str(e))
    if errors:
        raise SummaryError("; ".join(errors))
    return done


def _update_file(path: Path, output: str, sha: str | None, figures: dict[str, Any]) -> bool:
    """Rewrite the row of ``output`` in one summary file; False when it has no such row."""
    import polars as pl

    csv = path.name == SUMMARY_CSV
    try:  # the CSV is kept as text so that the other rows are written back byte for byte
        check_size(path, error=SummaryError, max_bytes=MAX_SUMMARY_BYTES)
        frame = pl.read_csv(path, infer_schema=False) if csv else pl.read_parquet(path)
        foreign = [c for c in frame.columns if c not in SUMMARY_SCHEMA]
        if "output" not in frame.columns or foreign:  # only a summary wsi-screen wrote is rewritten
            msg = f"{path} was not written by wsi-screen (columns {', '.join(foreign) or 'without output'}); left alone"
            raise SummaryError(msg)
        mask = pl.col("output") == (csv_cell(output) if csv else output)
        if sha and "input_sha256" in frame.columns:
            mask &= pl.col("input_sha256").is_null() | (pl.col("input_sha256") == sha)
        if not frame.select(mask.any()).item():
            return False
        new = _set_row(frame, mask, _as_csv_text(figures) if csv else figures, text=csv)
        atomic_write_with(path, (lambda p: new.write_csv(p)) if csv else (lambda p: new.write_parquet(p)))
    except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as e:
        reason = " ".join(str(e).split())  # one line
        msg = f"{path}: cannot update the batch summary: {reason}"
        raise SummaryError(msg) from e
    return True


def _set_row(frame: pl.DataFrame, mask: pl.Expr, values: dict[str, Any], *, text: bool) -> pl.DataFrame:
    """``frame`` with ``values`` in the rows of ``mask``; a column it lacks is added (null elsewhere).

    ``text``: the frame holds the CSV's text, so an added column is text too.
    """
    import polars as pl

    schema = _schema()
    exprs = []
    for name, value in values.items():
        dtype = frame.schema.get(name) or (pl.String() if text else schema[name])
        current = pl.col(name) if name in frame.columns else pl.lit(None, dtype)
        exprs.append(pl.when(mask).then(pl.lit(value).cast(dtype)).otherwise(current).alias(name))
    return frame.with_columns(exprs)


def _as_csv_text(values: dict[str, Any]) -> dict[str, str | None]:
    """``values`` as the batch's summary.csv writes them (polars' CSV text of the typed columns)."""
    import io

    import polars as pl

    typed = pl.DataFrame([values], schema={k: _schema()[k] for k in values}, orient="row")
    return pl.read_csv(io.StringIO(typed.write_csv()), infer_schema=False).row(0, named=True)


def write_run_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Write run_metadata.json atomically."""
    atomic_write_text(path, json.dumps(metadata, indent=2, ensure_ascii=False, default=str) + "\n")


def read_report(path: Path) -> dict[str, Any] | None:
    """Load a report.json (read bounded), or None when it is missing or unreadable (the input is then redone)."""
    if path.is_file():
        try:
            return read_json_object(path, error=WsiScreenError, max_bytes=MAX_REPORT_JSON_BYTES)
        except WsiScreenError as e:
            log.warning("report not used: %s", e)
    return None


def report_run_key(report: dict[str, Any]) -> str | None:
    """The batch run key stamped in a report.json (None: not stamped, e.g. a redo interrupted before)."""
    batch = report.get("batch")
    key = batch.get("run_key") if isinstance(batch, dict) else None
    return key if isinstance(key, str) else None


def stamp_run_key(report: dict[str, Any], path: Path, key: str) -> dict[str, Any]:
    """Rewrite ``path`` (the input's report.json) with ``batch.run_key`` set; return the new content.

    Raises:
        OSError: the file cannot be written.
        WsiScreenError: the report does not match its schema.
    """
    from wsi_screen.reports.json_report import write_report_json

    stamped = {**report, "batch": {"run_key": key}}
    write_report_json(stamped, path)
    return stamped


def write_index(out: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write OUT/index.html from the summary rows: the reports of the inputs done, and the failures."""
    from wsi_screen.reports.index import write_index_html

    reports = []
    failures = []
    for row in rows:
        if row["status"] == STATUS_OK and row.get("output"):
            folder = out / str(row["output"]).rsplit("/", 1)[0]  # output is <stem>/report.json
            report = read_report(folder / REPORT_JSON)
            if report is not None:
                reports.append((folder, report))
        elif row["status"] == STATUS_FAILED:
            failures.append(
                Failure(row["input"], row["error_stage"], row["error_type"], row["error_message"])
            )
    try:
        write_index_html(out, reports, failures=failures)
    except Exception:  # noqa: BLE001 - the index is a convenience; summary.csv is already written
        log.exception("%s: index.html not written", out)


def read_summary(out: Path) -> list[dict[str, Any]] | None:
    """The rows of OUT/summary.parquet, or None when there is none (or it cannot be read)."""
    import polars as pl

    path = out / SUMMARY_PARQUET
    if not path.is_file():
        return None
    try:
        check_size(path, error=SummaryError, max_bytes=MAX_SUMMARY_BYTES)
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException, SummaryError) as e:
        log.warning("%s: cannot read the batch summary: %s", path, e)
        return None
    if not {"input", "status", "output", "error_stage", "error_type", "error_message"} <= set(frame.columns):
        log.warning("%s: not a batch summary", path)
        return None
    return frame.to_dicts()


def refresh_index(out: Path) -> bool:
    """Rewrite OUT/index.html as the batch wrote it (same inputs, failures listed), reports re-read.

    Used after ``review apply`` changed a report. Returns False when OUT holds no batch summary.
    """
    rows = read_summary(out)
    if rows is None:
        return False
    write_index(out, rows)
    return True


def run_metadata(
    options: BatchOptions,
    cfg: Any,
    bundle: Any,
    model_sha: str,
    settings: str,
    locations: Sequence[Path],
    out: Path,
    n_inputs: int,
) -> dict[str, Any]:
    """The run_metadata.json content at the start of a batch (counts are added at the end)."""
    import importlib.metadata as md

    from wsi_screen.reports.json_report import software_versions

    versions = software_versions()
    for pkg in ("polars", "ray", "ultralytics"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "status": "running",
        "command": sys.argv,
        "inputs": [str(Path(p).absolute()) for p in locations],
        "n_inputs": n_inputs,
        "out": str(out),
        "options": {
            "recursive": options.recursive,
            "patterns": list(options.patterns),
            "resume": options.resume,
            "fail_fast": options.fail_fast,
            "engine": options.engine,
            "ray_address": options.ray_address,
            "workers": options.workers,
        },
        "software": versions,
        "model": {
            "name": bundle.name,
            "path": str(bundle.path) if bundle.path else None,
            "sha256": model_sha,
            "architecture": bundle.architecture,
            "classes": list(bundle.class_names),
        },
        "config": cfg.to_dict(),
        "settings_sha256": settings,
        "device_requested": cfg.classify.device,
    }
