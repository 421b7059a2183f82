"""Apply a reviewer's corrections: recompute counts and flags, re-render report.html and report.json.

The model's predictions stay in cells.parquet (``predicted_class``, ``prob_*``); corrections go in a
``reviewed_class`` column. report.json gains a ``review`` block with the corrections, the reviewer,
the time and the model's original figures. A reviewed cell counts with probability 1 for its
reviewed class, so the probabilistic blast % and the hairy-cell flag follow the reviewer. Reading and
checking the corrections file is :mod:`wsi_screen.reports.corrections`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from wsi_screen.aggregate import summarize
from wsi_screen.config import AggregateConfig
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_path
from wsi_screen.io import sha256_file
from wsi_screen.report_files import CELLS_GEOJSON
from wsi_screen.report_files import CELLS_PARQUET
from wsi_screen.report_files import REPORT_HTML
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.assets import ASSETS_JSON
from wsi_screen.reports.assets import ReportAssets
from wsi_screen.reports.assets import ReportOptions
from wsi_screen.reports.assets import read_assets
from wsi_screen.reports.audit import current_version
from wsi_screen.reports.audit_anchor import write_anchor
from wsi_screen.reports.cells_check import RECORD_KEY
from wsi_screen.reports.cells_check import cells_record
from wsi_screen.reports.cells_check import check_cells_table
from wsi_screen.reports.cells_table import write_cells_parquet
from wsi_screen.reports.corrections import ReviewError
from wsi_screen.reports.corrections import check_reviewer
from wsi_screen.reports.corrections import load_corrections
from wsi_screen.reports.corrections import read_report
from wsi_screen.reports.deepzoom import read_deep_zoom
from wsi_screen.reports.geojson import write_cells_geojson
from wsi_screen.reports.html_report import aggregate_config
from wsi_screen.reports.html_report import write_report_html
from wsi_screen.reports.json_report import validate_report
from wsi_screen.reports.json_report import write_report_json
from wsi_screen.reports.review_guard import check_review_size
from wsi_screen.reports.review_guard import finish_interrupted_signing
from wsi_screen.reports.review_guard import refuse_review_links
from wsi_screen.reports.review_guard import write_review_anchor
from wsi_screen.reports.reviewed import ORIGIN_REVIEWER
from wsi_screen.reports.reviewed import REMOVAL_REASONS
from wsi_screen.reports.reviewed import REVIEW_COLUMNS
from wsi_screen.reports.reviewed import apply_edits
from wsi_screen.reports.reviewed import model_confidence
from wsi_screen.reports.reviewed import review_inputs
from wsi_screen.reports.reviewed import review_records
from wsi_screen.reports.reviewed import with_review_columns
from wsi_screen.reports.rules import configured_review_classes
from wsi_screen.reports.rules import review_classes
from wsi_screen.reports.signoff import SIGNED_FILES
from wsi_screen.reports.signoff import begin_review
from wsi_screen.reports.signoff import checked_trail
from wsi_screen.reports.signoff import finish_signing

__all__ = ["ReviewError", "apply_review"]

log = logging.getLogger(__name__)

_FIGURES = (
    "cells_detected",
    "cells_counted",
    "differential",
    "excluded",
    "blast",
    "me_ratio",
    "histogram",
    "flags",
    "qc",
)


def _load_report(path: Path) -> tuple[dict[str, Any], AggregateConfig]:
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


def _load_cells(path: Path, names: list[str], allowed: list[str]) -> pl.DataFrame:
    """Read cells.parquet and check the columns and values a review uses.

    Raises:
        ReviewError: unreadable, a column missing, of the wrong type or with values this report's
            model does not have; the message names the file.
    """
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as e:
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


def _write_reviewed(
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


def _keep_model_confidence(qc: dict[str, Any], conf: np.ndarray, threshold: float) -> None:
    """QC confidence figures describe the model's calls, not reviewed cells counted as certain."""
    qc["mean_confidence"] = round(float(conf.mean()), 4) if len(conf) else None
    qc["low_confidence_fraction"] = round(float((conf < threshold).mean()), 4) if len(conf) else 0.0


def apply_review(
    report_dir: Path,
    corrections_path: Path,
    *,
    reviewer: str | None = None,
    options: ReportOptions | None = None,
    sign: bool = False,
) -> dict[str, Any]:
    """Apply corrections to OUT/<stem>/ and rewrite its cells table, GeoJSON, HTML and JSON reports.

    Corrections merge with those of earlier reviews (a later class wins; a correction back to the
    predicted class removes it). The ``review.original`` figures are always the model's.

    Args:
        report_dir: the folder holding report.json and cells.parquet.
        corrections_path: the JSON exported from report.html.
        reviewer: overrides the reviewer named in the corrections file.
        options: gallery and queue sizes for the re-rendered page.
        sign: sign the new version (needs a reviewer): its report.json, report.html and
            cells.parquet are frozen read-only under ``versions/v<N>/`` and a ``signed`` event
            records their sha256 in the append-only ``audit`` trail.

    Returns:
        The new report dict.

    Raises:
        ReviewError: a report file missing, unreadable or of unexpected structure (the message
            names it), invalid corrections, or an output that cannot be written; the folder is
            then unchanged.

    Example:
        >>> apply_review(Path("OUT/field_a"), Path("corrections.json"), reviewer="AB")  # doctest: +SKIP
    """
    report_dir = Path(report_dir)
    refuse_review_links(report_dir)
    report, cfg = _load_report(report_dir / REPORT_JSON)
    report = finish_interrupted_signing(report_dir, report)
    names = list(report["model"]["classes"])
    scheme = configured_review_classes(report)
    allowed = review_classes(names, scheme)
    frame = _load_cells(report_dir / CELLS_PARQUET, names, allowed)
    try:
        check_cells_table(report, report_dir / CELLS_PARQUET, frame, review_inputs(frame, names, scheme)[0])
    except WsiScreenError as e:  # the message names the file
        raise ReviewError(str(e)) from e
    ids = frame["cell_id"].to_list()
    preds = frame["predicted_class"].to_list()
    check_reviewer(reviewer, where="--reviewer")
    corr = load_corrections(
        corrections_path,
        report=report,
        predicted=dict(zip(ids, preds, strict=True)),
        class_names=allowed,
        positions=dict(zip(ids, zip(frame["x"].to_list(), frame["y"].to_list(), strict=True), strict=True)),
    )
    frame, changes = apply_edits(frame, corr.edits)
    # a review changes classes, not pixels: the screening's domain judgement stands
    domain = (report.get("qc") or {}).get("domain")
    labels, probs, fig_names = review_inputs(frame, names, scheme)
    summary = summarize(labels, probs, fig_names, cfg, domain, model_classes=names)
    _keep_model_confidence(summary["qc"], model_confidence(frame, names), cfg.low_confidence)
    previous = report.get("review") or {}
    original = previous.get("original") or {k: report[k] for k in _FIGURES if k in report}
    # changes are stated against the model's figures, so applying the same file again says the same
    before = {f["name"]: f["status"] for f in original.get("flags", report["flags"])}
    changed = [
        {"name": f["name"], "from": before.get(f["name"]), "to": f["status"]}
        for f in summary["flags"]
        if before.get(f["name"]) != f["status"]
    ]
    new = {**report, **summary}
    new["review"] = {
        "reviewer": reviewer or corr.reviewer or previous.get("reviewer"),
        "reviewed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "corrections_file": corr.source.name,
        "comment": corr.comment if corr.comment is not None else previous.get("comment"),
        **review_records(frame),
        "classes_reviewer_only": [c for c in fig_names if c not in names],
        "changes": changes,
        "blast_percent_before": (original.get("blast") or report["blast"]).get("percent"),
        "flags_changed": changed,
        "original": original,
    }
    who = new["review"]["reviewer"]
    counts: dict[str, int] = {}
    for rec in new["review"]["corrections"]:
        counts[rec["kind"]] = counts.get(rec["kind"], 0) + 1
    try:
        new["audit"], new["signoff"] = begin_review(
            report_dir, report, reviewer=who, sign=sign, changes=changes, flags_changed=changed,
            corrections={"file": corr.source.name, "sha256": sha256_file(corr.source), "counts": counts},
            comment=new["review"]["comment"],
        )  # fmt: skip
    except WsiScreenError as e:  # the message names the file
        raise ReviewError(str(e)) from e
    try:
        validate_report(new)
    except WsiScreenError as e:
        msg = f"{report_dir / REPORT_JSON}: the reviewed report would be invalid: {e}"
        raise ReviewError(msg) from e
    check_review_size(report_dir / REPORT_JSON, new)
    try:
        assets = read_assets(report_dir / ASSETS_JSON)
    except WsiScreenError as e:  # the message names the file
        raise ReviewError(str(e)) from e
    _write_reviewed(report_dir, new, frame, names, assets, options)
    write_review_anchor(report_dir, new["audit"])
    if sign:
        files = {n: report_dir / n for n in SIGNED_FILES}
        try:
            new["audit"] = finish_signing(report_dir, new, files)
            write_report_json(new, report_dir / REPORT_JSON)
            write_anchor(report_dir, new["audit"])
        except (OSError, WsiScreenError) as e:
            msg = f"{report_dir}: cannot sign the reviewed report: {e}"
            raise ReviewError(msg) from e
    log.info("%s: %d correction(s) applied", report_dir, new["review"]["n_corrections"])
    return new


def verify_review(report_dir: Path) -> str:
    """Check a report's audit trail (chain, anchor, signed versions, sign-off) and cells table.

    Returns:
        One line saying what holds (events, version, signed versions).

    Raises:
        ReviewError: something does not hold; the message names the file and what is missing.
    """
    report_dir = Path(report_dir)
    report, _ = _load_report(report_dir / REPORT_JSON)
    names = list(report["model"]["classes"])
    scheme = configured_review_classes(report)
    frame = _load_cells(report_dir / CELLS_PARQUET, names, review_classes(names, scheme))
    try:
        trail = checked_trail(report_dir, report)
        check_cells_table(report, report_dir / CELLS_PARQUET, frame, review_inputs(frame, names, scheme)[0])
    except WsiScreenError as e:  # the message names the file
        raise ReviewError(str(e).removesuffix("; nothing applied")) from e
    signed = sorted(int(e["version"]) for e in trail if e.get("action") == "signed")
    versions = ", ".join(f"v{v}" for v in signed) or "none"
    state = (report.get("signoff") or {}).get("status", "unreviewed")
    return (
        f"{report_dir}: audit trail intact ({len(report.get('audit') or [])} event(s), version "
        f"{current_version(report)} {state}; signed versions: {versions}); cells table matches report.json"
    )
