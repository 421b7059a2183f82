"""Apply a reviewer's corrections: recompute counts and flags, re-render report.html and report.json.

The model's predictions stay in cells.parquet (``predicted_class``, ``prob_*``); corrections go in a
``reviewed_class`` column. report.json gains a ``review`` block with the corrections, the reviewer,
the time and the model's original figures. A reviewed cell counts with probability 1 for its
reviewed class, so the probabilistic blast % and the hairy-cell flag follow the reviewer. Reading and
checking the corrections file is :mod:`wsi_screen.reports.corrections`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from wsi_screen.aggregate import summarize
from wsi_screen.config import AggregateConfig
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import sha256_file
from wsi_screen.report_files import CELLS_PARQUET
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.assets import ASSETS_JSON
from wsi_screen.reports.assets import ReportOptions
from wsi_screen.reports.assets import read_assets
from wsi_screen.reports.audit import current_version
from wsi_screen.reports.audit_anchor import write_anchor
from wsi_screen.reports.cells_check import check_cells_table
from wsi_screen.reports.corrections import Corrections
from wsi_screen.reports.corrections import ReviewError
from wsi_screen.reports.corrections import check_reviewer
from wsi_screen.reports.corrections import load_corrections
from wsi_screen.reports.json_report import validate_report
from wsi_screen.reports.json_report import write_report_json
from wsi_screen.reports.review_files import load_cells
from wsi_screen.reports.review_files import load_report
from wsi_screen.reports.review_files import write_reviewed
from wsi_screen.reports.review_guard import check_review_size
from wsi_screen.reports.review_guard import finish_interrupted_signing
from wsi_screen.reports.review_guard import refuse_review_links
from wsi_screen.reports.review_guard import write_review_anchor
from wsi_screen.reports.reviewed import CellEdits
from wsi_screen.reports.reviewed import apply_edits
from wsi_screen.reports.reviewed import model_confidence
from wsi_screen.reports.reviewed import review_inputs
from wsi_screen.reports.reviewed import review_records
from wsi_screen.reports.rules import configured_review_classes
from wsi_screen.reports.rules import review_classes
from wsi_screen.reports.signoff import SIGNED_FILES
from wsi_screen.reports.signoff import begin_review
from wsi_screen.reports.signoff import checked_trail
from wsi_screen.reports.signoff import finish_signing

__all__ = ["ReviewError", "ReviewOutcome", "apply_review", "review_report", "sign_review", "verify_review"]

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


def _keep_model_confidence(qc: dict[str, Any], conf: np.ndarray, threshold: float) -> None:
    """QC confidence figures describe the model's calls, not reviewed cells counted as certain."""
    qc["mean_confidence"] = round(float(conf.mean()), 4) if len(conf) else None
    qc["low_confidence_fraction"] = round(float((conf < threshold).mean()), 4) if len(conf) else 0.0


@dataclass(frozen=True)
class ReviewOutcome:
    """What a review did: the report as it now stands, and whether a new version was written.

    Attributes:
        report: report.json as it now is.
        changed: a new version (a ``review_applied`` event) was written; False when the corrections
            state what the report already holds (applying the same file again) and nothing was signed.
        cells_changed: cells whose state this review changed (0 for a file applied again).
    """

    report: dict[str, Any]
    changed: bool
    cells_changed: int = 0


def apply_review(
    report_dir: Path,
    corrections_path: Path,
    *,
    reviewer: str | None = None,
    options: ReportOptions | None = None,
    sign: bool = False,
) -> dict[str, Any]:
    """Apply corrections to OUT/<stem>/ and rewrite its cells table, GeoJSON, HTML and JSON reports.

    A corrections file states the end state of each cell it names, so applying it again changes
    nothing: no new version is made and the report is returned as it stands (with ``sign``, the
    version as it stands is signed: :func:`sign_review`). Corrections merge with those of earlier
    reviews (a later class wins; a correction back to the predicted class removes it). The
    ``review.original`` figures are always the model's.

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
    return review_report(report_dir, corrections_path, reviewer=reviewer, options=options, sign=sign).report


def sign_review(
    report_dir: Path, *, reviewer: str, comment: str | None = None, options: ReportOptions | None = None
) -> ReviewOutcome:
    """Sign the report in ``report_dir`` as it stands, without a corrections file (``review sign``).

    The figures as they are (the model's, for a report never reviewed) become a new version, with no
    cell changed, signed by ``reviewer``: frozen under ``versions/v<N>/`` like ``review apply --sign``.
    A report whose current version is signed already is left as it is (``changed`` False).

    Raises:
        ReviewError: no reviewer, or the report folder fails the checks of a review.
    """
    return review_report(report_dir, None, reviewer=reviewer, options=options, sign=True, comment=comment)


def review_report(
    report_dir: Path,
    corrections_path: Path | None,
    *,
    reviewer: str | None = None,
    options: ReportOptions | None = None,
    sign: bool = False,
    comment: str | None = None,
) -> ReviewOutcome:
    """Apply corrections (None: none, only sign) and say whether a new version was written.

    See :func:`apply_review`; ``comment`` is the case comment of a signing without a file.

    Raises:
        ReviewError: as :func:`apply_review`.
    """
    report_dir = Path(report_dir)
    refuse_review_links(report_dir)
    report, cfg = load_report(report_dir / REPORT_JSON)
    report = finish_interrupted_signing(report_dir, report)
    names = list(report["model"]["classes"])
    scheme = configured_review_classes(report)
    allowed = review_classes(names, scheme)
    frame = load_cells(report_dir / CELLS_PARQUET, names, allowed)
    try:
        check_cells_table(report, report_dir / CELLS_PARQUET, frame, review_inputs(frame, names, scheme)[0])
    except WsiScreenError as e:  # the message names the file
        raise ReviewError(str(e)) from e
    check_reviewer(reviewer, where="--reviewer")
    previous = report.get("review") or {}
    if corrections_path is None:
        corr = Corrections(CellEdits(), None, None, comment)
    else:
        ids = frame["cell_id"].to_list()
        corr = load_corrections(
            corrections_path,
            report=report,
            predicted=dict(zip(ids, frame["predicted_class"].to_list(), strict=True)),
            class_names=allowed,
            positions=dict(
                zip(ids, zip(frame["x"].to_list(), frame["y"].to_list(), strict=True), strict=True)
            ),
        )
    frame, changes = apply_edits(frame, corr.edits)
    block = report.get("signoff") or {}
    # a first review is recorded even when it changes no cell (the reviewer found nothing to correct)
    nothing_new = bool(previous) and not changes and corr.comment in (None, previous.get("comment"))
    if nothing_new and (not sign or block.get("status") == "signed"):  # the report holds what the file states
        try:  # still the report it says it is: an altered trail or signed version is named, not passed over
            checked_trail(report_dir, report)
        except WsiScreenError as e:
            raise ReviewError(str(e)) from e
        log.info("%s: the corrections state what the report holds; no new version", report_dir)
        return ReviewOutcome(report, changed=False)
    new = _reviewed_report(report, frame, names, scheme, cfg, corr, reviewer, changes)
    counts: dict[str, int] = {}
    for rec in new["review"]["corrections"]:
        counts[rec["kind"]] = counts.get(rec["kind"], 0) + 1
    source = corr.source
    try:
        new["audit"], new["signoff"] = begin_review(
            report_dir, report, reviewer=new["review"]["reviewer"], sign=sign, changes=changes,
            flags_changed=new["review"]["flags_changed"], comment=new["review"]["comment"],
            corrections={"file": source.name if source else None,
                         "sha256": sha256_file(source) if source else None, "counts": counts},
        )  # fmt: skip
    except WsiScreenError as e:  # the message names the file
        raise ReviewError(str(e)) from e
    _write_new_version(report_dir, new, frame, names, options, sign=sign)
    log.info("%s: %d correction(s) applied", report_dir, new["review"]["n_corrections"])
    return ReviewOutcome(new, changed=True, cells_changed=len(changes))


def _reviewed_report(
    report: dict[str, Any],
    frame: pl.DataFrame,
    names: list[str],
    scheme: list[str] | None,
    cfg: AggregateConfig,
    corr: Corrections,
    reviewer: str | None,
    changes: list[dict[str, Any]],
) -> dict[str, Any]:
    """The report with the reviewed figures and its ``review`` block (not yet its trail)."""
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
        **({"corrections_file": corr.source.name} if corr.source is not None else {}),
        "comment": corr.comment if corr.comment is not None else previous.get("comment"),
        **review_records(frame),
        "classes_reviewer_only": [c for c in fig_names if c not in names],
        "changes": changes,
        "blast_percent_before": (original.get("blast") or report["blast"]).get("percent"),
        "flags_changed": changed,
        "original": original,
    }
    return new


def _write_new_version(
    report_dir: Path,
    new: dict[str, Any],
    frame: pl.DataFrame,
    names: list[str],
    options: ReportOptions | None,
    *,
    sign: bool,
) -> None:
    """Check and write the new version (all or nothing), its anchor, and with ``sign`` its frozen copy.

    Raises:
        ReviewError: the new report would be invalid or too large, or cannot be written or signed.
    """
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
    write_reviewed(report_dir, new, frame, names, assets, options)
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


def verify_review(report_dir: Path) -> str:
    """Check a report's audit trail (chain, anchor, signed versions, sign-off) and cells table.

    Returns:
        One line saying what holds (events, version, signed versions).

    Raises:
        ReviewError: something does not hold; the message names the file and what is missing.
    """
    report_dir = Path(report_dir)
    report, _ = load_report(report_dir / REPORT_JSON)
    names = list(report["model"]["classes"])
    scheme = configured_review_classes(report)
    frame = load_cells(report_dir / CELLS_PARQUET, names, review_classes(names, scheme))
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
