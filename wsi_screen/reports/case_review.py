"""A review of one field of a case recomputes the case: the pooled figures over every field as reviewed.

A morphologist reviews a case field by field (``wsi-screen review apply OUT/<case>/fields/<field>
corrections.json``); each field keeps its own reviewed report, and :func:`refresh_case` then pools
the reviewed tables of all the case's counted fields with the same rules (``summarize``) into the
case's report.json, report.html and cells.parquet. Cells the case's stopping rule did not use stay
out (cells.parquet ``counted``); cells a reviewer added count. The case keeps the model's pooled
figures (``review.original``) and lists the fields reviewed so far; its ``fields`` rows take each
field's reviewed figures and review state. A refresh that changes the pooled figures is a new
version of the case (a ``review_applied`` event naming the field; a draft that names the signed
version it amends), so a signed case is never changed silently; :mod:`wsi_screen.reports.case_signoff`
signs a case.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from wsi_screen.aggregate import summarize
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_path
from wsi_screen.outnames import is_folder_name
from wsi_screen.report_files import CELLS_PARQUET
from wsi_screen.report_files import REPORT_HTML
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.cells_check import RECORD_KEY
from wsi_screen.reports.cells_check import cells_record
from wsi_screen.reports.cells_table import write_cells_parquet
from wsi_screen.reports.corrections import ReviewError
from wsi_screen.reports.corrections import read_report
from wsi_screen.reports.html_report import aggregate_config
from wsi_screen.reports.json_report import validate_report
from wsi_screen.reports.json_report import write_report_json
from wsi_screen.reports.review_guard import finish_interrupted_signing
from wsi_screen.reports.review_guard import write_review_anchor
from wsi_screen.reports.reviewed import model_confidence
from wsi_screen.reports.reviewed import review_inputs
from wsi_screen.reports.reviewed import with_review_columns
from wsi_screen.reports.rules import configured_review_classes
from wsi_screen.reports.signoff import begin_review

FIELDS_DIR = "fields"
_DECIDING = ("cells_detected", "cells_counted", "differential", "excluded", "blast", "me_ratio", "flags")
"""The figures whose change makes a new version of the case."""
_FIGURES = ("cells_detected", "cells_counted", "differential", "excluded", "blast", "me_ratio", "histogram",
            "flags", "qc")  # fmt: skip


def case_of_field(field_dir: Path) -> Path | None:
    """The case folder a field report belongs to (``<case>/fields/<field>/``), or None."""
    field_dir = Path(field_dir).resolve()
    case_dir = field_dir.parent.parent
    if field_dir.parent.name != FIELDS_DIR or not (case_dir / REPORT_JSON).is_file():
        return None
    report = read_report(case_dir / REPORT_JSON)
    return (
        case_dir if isinstance(report, dict) and (report.get("input") or {}).get("kind") == "case" else None
    )


def read_case(case_dir: Path) -> dict[str, Any]:
    """A case's report.json, a signing a kill left unfinished completed first.

    Raises:
        ReviewError: not a case report, or unreadable (the message names it).
    """
    report = read_report(Path(case_dir) / REPORT_JSON)
    if not isinstance(report, dict) or (report.get("input") or {}).get("kind") != "case":
        msg = f"{Path(case_dir) / REPORT_JSON}: not a case report"
        raise ReviewError(msg)
    return finish_interrupted_signing(Path(case_dir), report)


def refresh_case(case_dir: Path, *, field: str | None = None, reviewer: str | None = None) -> dict[str, Any]:
    """Recompute a case's pooled figures from its fields' (reviewed) cell tables; rewrite it.

    Args:
        case_dir: the case folder.
        field: the field whose review asked for the refresh (named in the case's audit event).
        reviewer: who reviewed it.

    Returns:
        The new case report.

    Raises:
        ReviewError: a case or field file is missing or unreadable, or the case's audit trail does
            not hold (the message names it); the case folder is then unchanged.
    """
    from wsi_screen.case_screen import write_case_html

    case_dir = Path(case_dir)
    report = read_case(case_dir)
    names = list(report["model"]["classes"])
    cfg = aggregate_config(report)
    pooled = _pooled_table(case_dir, report)
    labels, probs, fig_names = review_inputs(pooled, names, configured_review_classes(report))
    domain = (report.get("qc") or {}).get("domain")
    summary = summarize(labels, probs, fig_names, cfg, domain, model_classes=names)
    conf = model_confidence(pooled, names)  # QC confidence describes the model's calls
    summary["qc"]["mean_confidence"] = round(float(conf.mean()), 4) if len(conf) else None
    summary["qc"]["low_confidence_fraction"] = (
        round(float((conf < cfg.low_confidence).mean()), 4) if len(conf) else 0.0
    )
    previous = report.get("review") or {}
    reviewed = sorted({str(f) for f in pooled.filter(pl.col("reviewed_field"))["field"].to_list()})
    new = {**report, **summary}
    new["fields"] = [field_row(case_dir, f) for f in report.get("fields") or []]
    if any(new.get(k) != report.get(k) for k in _DECIDING):  # a new version of the case's figures
        original = (previous.get("original") or report).get("flags") or []
        was = {f["name"]: f["status"] for f in original}
        changed = [{"name": f["name"], "from": was.get(f["name"]), "to": f["status"]}
                   for f in new["flags"] if was.get(f["name"]) != f["status"]]  # fmt: skip
        try:
            new["audit"], new["signoff"] = begin_review(
                case_dir, report, reviewer=reviewer, sign=False, changes=[], flags_changed=changed,
                corrections={"file": None, "sha256": None, "counts": {}, "field": field}, comment=None,
            )  # fmt: skip
        except WsiScreenError as e:  # the message names the file
            raise ReviewError(str(e)) from e
    elif previous:  # the figures stand (a field signed, say): the review block and trail stay
        new["review"] = previous
        _write_case(case_dir, new, pooled, write_case_html)
        return new
    new["review"] = {
        "kind": "case",
        "reviewed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "fields_reviewed": reviewed,
        "n_corrections": pooled.filter(
            (pl.col("origin") == "reviewer") | pl.col("reviewed_class").is_not_null() | pl.col("removed").is_not_null()
        ).height,
        "corrections": [],
        "blast_percent_before": ((previous.get("original") or report).get("blast") or {}).get("percent"),
        "original": previous.get("original") or {k: report[k] for k in _FIGURES if k in report},
    }  # fmt: skip
    _write_case(case_dir, new, pooled, write_case_html)
    return new


def _write_case(case_dir: Path, new: dict[str, Any], pooled: pl.DataFrame, write_html: Any) -> None:
    """Write the case's cells table and page, then report.json (the completion marker), then its anchor."""
    validate_report(new)
    with atomic_path(case_dir / CELLS_PARQUET) as tmp_cells, atomic_path(case_dir / REPORT_HTML) as tmp_html:
        write_cells_parquet(pooled.drop("reviewed_field"), tmp_cells)
        new[RECORD_KEY] = cells_record(tmp_cells, pooled.height)
        write_html(new, case_fields(new), tmp_html)
    write_report_json(new, case_dir / REPORT_JSON)  # last: the completion marker
    if new.get("audit"):
        write_review_anchor(case_dir, new["audit"])


def case_fields(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``fields`` rows as the case page renders them."""
    return [{"failure": None, "thumbnail": None, "report": None, **f} for f in report.get("fields") or []]


def field_row(case_dir: Path, row: dict[str, Any]) -> dict[str, Any]:
    """A case's ``fields`` row with its field's figures as they now are (reviewed) and its review state."""
    if "failure" in row or not is_folder_name(row.get("name")):
        return row
    rep = read_report(Path(case_dir) / FIELDS_DIR / row["name"] / REPORT_JSON)
    if not isinstance(rep, dict):
        return row
    block = rep.get("signoff") or {}
    state = ""
    if block:
        who = f" by {block['reviewer']}" if block.get("reviewer") else ""
        state = (
            f"{'signed' if block.get('status') == 'signed' else 'draft'} version {block.get('version')}{who}"
        )
    elif rep.get("review"):
        state = "reviewed"
    return {
        **row,
        "cells_detected": rep.get("cells_detected", row.get("cells_detected")),
        "cells_counted": rep.get("cells_counted", row.get("cells_counted")),
        "blast_percent": (rep.get("blast") or {}).get("percent"),
        "reviewed": bool(rep.get("review")),
        "review_state": state,
    }


def _pooled_table(case_dir: Path, report: dict[str, Any]) -> pl.DataFrame:
    """The counted fields' cell tables, reviewed, with ``field``, ``field_cell_id`` and ``counted``."""
    old = case_dir / CELLS_PARQUET
    try:
        used = pl.read_parquet(old) if old.is_file() else None
    except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as e:
        msg = f"{old}: cannot read the case's cells: {e}"
        raise ReviewError(msg) from e
    parts = []
    for f in report.get("fields") or []:
        if "failure" in f or f.get("status", "counted") != "counted":
            continue
        if not is_folder_name(f.get("name")):  # a name, never a path
            msg = f"{case_dir / REPORT_JSON}: field name {f.get('name')!r:.60} is not one wsi-screen writes"
            raise ReviewError(msg)
        path = case_dir / FIELDS_DIR / f["name"] / CELLS_PARQUET
        try:
            frame = with_review_columns(pl.read_parquet(path))
        except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as e:
            msg = f"{path}: cannot read the field's cells: {e}"
            raise ReviewError(msg) from e
        field_report = read_report(path.with_name(REPORT_JSON))
        frame = frame.drop([c for c in ("counted", "region") if c in frame.columns]).with_columns(
            pl.lit(f["name"]).alias("field"),
            pl.col("cell_id").alias("field_cell_id"),
            pl.lit(bool(isinstance(field_report, dict) and field_report.get("review"))).alias(
                "reviewed_field"
            ),
        )
        parts.append(frame)
    if not parts:
        msg = f"{case_dir}: the case has no counted field to pool"
        raise ReviewError(msg)
    pooled = pl.concat(parts, how="diagonal_relaxed")
    if (
        used is not None and "counted" in used.columns
    ):  # the case's stopping rule: cells it did not use stay out
        keep = used.select("field", "field_cell_id", "counted")
        pooled = pooled.join(keep, on=["field", "field_cell_id"], how="left")
        pooled = pooled.with_columns(pl.col("counted").fill_null(True))  # cells added by a reviewer count
    return pooled.with_columns(pl.int_range(pl.len()).alias("cell_id"))
