"""OUT/index.html: one sortable row per input with its key figures and flags, linking to its report.

Example:
    >>> write_index_html(Path("OUT"))  # scan OUT/*/report.json  # doctest: +SKIP
    >>> write_index_html(Path("OUT"), [(Path("OUT/field_a"), report)], failures=failures)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wsi_screen.domain_gate import domain_text
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_write_text
from wsi_screen.report_files import MAX_REPORT_JSON_BYTES
from wsi_screen.reports.html_report import static_text
from wsi_screen.reports.html_report import template_env
from wsi_screen.reports.json_report import DISCLAIMER
from wsi_screen.textfiles import read_json_object
from wsi_screen.types import Failure

log = logging.getLogger(__name__)

INDEX_HTML = "index.html"


def _flag(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((f for f in report.get("flags", []) if f.get("name") == name), None)


def index_row(folder: Path, report: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Key figures of one report for the index table."""
    rel = Path(os.path.relpath(folder, out_dir)) / "report.html"
    qc = report.get("qc", {})
    blast = report.get("blast", {})
    hairy = _flag(report, "hairy_cells")
    me = report.get("me_ratio", {})
    return {
        "href": "/".join(quote(part) for part in rel.parts),
        "name": Path(str(report["input"]["path"])).name,
        "kind": report["input"].get("kind", ""),
        "detected": report.get("cells_detected", 0),
        "counted": report.get("cells_counted", 0),
        "adequate": bool(qc.get("count_adequate")),
        "min_cells": qc.get("min_cells"),
        "blast": blast.get("percent"),
        "blast_ci": blast.get("ci95"),
        "blast_prob": blast.get("percent_prob"),
        "me": me.get("value"),
        "hairy": hairy.get("value") if hairy else None,
        "low_conf": qc.get("low_confidence_fraction"),
        "artefact": qc.get("artefact_fraction"),
        "raised": [f["name"] for f in report.get("flags", []) if f.get("status") == "raised"],
        "indeterminate": [f["name"] for f in report.get("flags", []) if f.get("status") == "indeterminate"],
        "reviewed": bool(report.get("review")),
        "domain": (qc.get("domain") or {}).get("status"),
        "domain_text": domain_text(qc.get("domain")),
        "signed": (report.get("signoff") or {}).get("status") == "signed",
    }


def _scan(out_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The reports under ``out_dir`` the index can show; any other report.json is skipped with a warning.

    Each is read bounded (size, nesting: :mod:`wsi_screen.textfiles`) and must give an index row.
    """
    found = []
    for path in sorted(out_dir.glob("*/report.json")):
        try:
            report = read_json_object(path, error=WsiScreenError, max_bytes=MAX_REPORT_JSON_BYTES)
            index_row(path.parent, report, out_dir)
        except WsiScreenError as e:
            log.warning("skipped in index.html: %s", e)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            log.warning(
                "%s: skipped in index.html: not a wsi-screen report (%s: %s)", path, type(e).__name__, e
            )
        else:
            found.append((path.parent, report))
    return found


INDEX_MARKERS = ('<meta name="generator" content="wsi-screen">', "<title>wsi-screen: ")
"""What a page wsi-screen wrote holds in its first lines (the title: pages written before the tag)."""


def written_by_us(path: Path) -> bool:
    """Whether the page at ``path`` is an index wsi-screen wrote (``review apply`` rewrites no other)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            head = f.read(8192)
    except OSError:
        return False
    return any(marker in head for marker in INDEX_MARKERS)


def write_index_html(
    out_dir: Path,
    reports: Sequence[tuple[Path, dict[str, Any]]] | None = None,
    *,
    failures: Sequence[Failure] = (),
) -> Path:
    """Write OUT/index.html atomically.

    Args:
        out_dir: the run's output folder (OUT).
        reports: (report folder, report.json content) pairs; None scans ``out_dir/*/report.json``,
            which also picks up inputs screened by earlier (resumed) runs.
        failures: inputs that failed, listed below the table.

    Returns:
        The path of index.html.
    """
    out_dir = Path(out_dir)
    pairs = _scan(out_dir) if reports is None else list(reports)
    rows = [index_row(Path(folder), rep, out_dir) for folder, rep in pairs]
    html = (
        template_env()
        .get_template("index.html.j2")
        .render(
            rows=rows,
            failures=list(failures),
            generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            disclaimer=DISCLAIMER,
            css=static_text("report.css"),
            js=static_text("index.js"),
            out_name=out_dir.resolve().name,
        )
    )
    path = out_dir / INDEX_HTML
    atomic_write_text(path, html)
    return path
