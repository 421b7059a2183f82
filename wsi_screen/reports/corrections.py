"""Reviewer corrections: read a corrections file exported from report.html and check it against a report.

A corrections file names cells by ``cell_id`` of one screening's cells.parquet, so it is accepted
only for the input (``input_sha256``) and the screening (pixel size, model, detector, report time)
it was made on. :mod:`wsi_screen.reports.review` applies what this module has validated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi_screen.errors import WsiScreenError
from wsi_screen.report_files import MAX_REPORT_JSON_BYTES
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.corrections_items import parse_items
from wsi_screen.reports.corrections_items import short_text
from wsi_screen.reports.reviewed import CellEdits
from wsi_screen.textfiles import read_json as read_bounded_json

CORRECTIONS_FORMAT = "wsi-screen-corrections"
CORRECTIONS_VERSION = 2
"""The version the page exports; version 1 files (reclassifications only) are still read."""
READABLE_VERSIONS = (1, 2)
MAX_REVIEWER_CHARS = 200
MAX_CORRECTIONS_BYTES = 8 << 20
"""A corrections file of the most items allowed, each with a comment of a few hundred characters."""
# what identifies the screening a report.html shows (report.json paths); the page exports it as
# ``screening`` and templates/report.html.j2 writes the same keys into its "screening-data" block
SCREENING_FIELDS: dict[str, str] = {
    "mpp": "pixel size (um/px)",
    "model_sha256": "model sha256",
    "detector": "detector",
    "generated_at": "report generated at",
}


class ReviewError(WsiScreenError):
    """A corrections file or report folder is invalid; the message names the file."""

    stage = "review"


@dataclass(frozen=True)
class Corrections:
    """Validated corrections: the cell edits, the reviewer and case comment named in the file."""

    edits: CellEdits
    reviewer: str | None
    source: Path | None
    """The corrections file; None for a signing without one (``review sign``)."""
    comment: str | None = None

    @property
    def classes(self) -> dict[int, str]:
        """Cell id -> reviewed class code (reclassifications only)."""
        return self.edits.classes


def read_json(path: Path, what: str, *, max_bytes: int = MAX_CORRECTIONS_BYTES) -> Any:
    """Parse a JSON file of at most ``max_bytes``.

    Raises:
        ReviewError: the file is missing, too large or not JSON; the message names it and ``what`` it is.
    """
    if not Path(path).exists():
        msg = f"{path}: {what} not found"
        raise ReviewError(msg)
    try:
        return read_bounded_json(path, error=ReviewError, max_bytes=max_bytes)
    except ReviewError as e:
        msg = f"{e} ({what})"
        raise ReviewError(msg) from e


def read_report(path: Path) -> Any:
    """Parse a report.json (at most :data:`~wsi_screen.report_files.MAX_REPORT_JSON_BYTES`).

    Raises:
        ReviewError: the file is missing, too large or not JSON; the message names it.
    """
    return read_json(path, REPORT_JSON, max_bytes=MAX_REPORT_JSON_BYTES)


def screening_of(report: dict[str, Any]) -> dict[str, Any]:
    """What identifies the screening behind a report: the page exports it with the corrections.

    Cell ids and predicted classes hold for one screening of an input only; the input screened
    again (at another pixel size, with another model or detector) may number its cells differently.
    """
    return {
        "mpp": report["input"].get("mpp"),
        "model_sha256": report["model"].get("sha256"),
        "detector": report.get("detector"),
        "generated_at": report.get("generated_at"),
    }


def load_corrections(
    path: Path,
    *,
    report: dict[str, Any],
    predicted: dict[int, str | None],
    class_names: list[str],
    positions: dict[int, tuple[float, float]] | None = None,
) -> Corrections:
    """Read a corrections file exported from report.html and check it was made on this report.

    The file must carry the format marker and the input's sha256; the screening it records (pixel
    size, model, detector, report time) and the predicted class of each corrected cell, where
    given, must be those of ``report`` and its cells table (``predicted``: cell id -> class, None
    for cells a reviewer added). ``class_names`` are the classes a reviewer may assign (the review
    scheme). Version 2 items have a ``kind`` (``reclassify``, ``add``, ``remove``); version 1
    items are reclassifications. A file without the ``screening`` record cannot show which
    screening its cell ids belong to: with ``positions`` (cell id -> level-0 x, y) given, each of
    its items that names a cell must then give that cell's ``x`` and ``y``.

    Raises:
        ReviewError: malformed file, unknown cell ids or class codes, or corrections made for
            another input or another screening of it; the message names the file.
    """
    path = Path(path)
    doc = read_json(path, "corrections file")
    version = _check_header(path, doc, report)
    size = (report["input"].get("width"), report["input"].get("height"))
    edits = parse_items(path, doc["corrections"], version, predicted=predicted, class_names=class_names,
                        error=ReviewError, image_size=size if all(isinstance(v, int) for v in size) else None,
                        positions=positions if doc.get("screening") is None else None)  # fmt: skip
    reviewer = doc.get("reviewer")
    if reviewer is not None and not isinstance(reviewer, str):
        msg = f"{path}: 'reviewer' must be a string, got {reviewer!r:.40}"
        raise ReviewError(msg)
    check_reviewer(reviewer, where=str(path))
    comment = short_text(doc.get("comment"), f"{path}: 'comment'", ReviewError)
    return Corrections(edits, reviewer or None, path, comment)


def check_reviewer(name: str | None, *, where: str) -> None:
    """Refuse a reviewer name over :data:`MAX_REVIEWER_CHARS` or with control characters.

    Raises:
        ReviewError: the name is too long or not printable.
    """
    if name is None:
        return
    if len(name) > MAX_REVIEWER_CHARS:
        msg = f"{where}: reviewer name of {len(name):,} characters; at most {MAX_REVIEWER_CHARS} allowed"
        raise ReviewError(msg)
    if not name.isprintable():
        msg = f"{where}: reviewer name has control characters"
        raise ReviewError(msg)


def _check_header(path: Path, doc: Any, report: dict[str, Any]) -> int:
    """Check the format marker, version, input sha256 and screening; return the version.

    Raises:
        ReviewError: not a corrections file of this format, or made for another input or screening.
    """
    if not isinstance(doc, dict) or doc.get("format") != CORRECTIONS_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        msg = f'{path}: not a corrections file exported from report.html (expected "format": "{CORRECTIONS_FORMAT}", got {got!r:.60})'
        raise ReviewError(msg)
    version = doc.get("version", 1)
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        msg = f"{path}: corrections format version {version!r:.40} is not supported (this wsi-screen reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        raise ReviewError(msg)
    if not isinstance(doc.get("corrections"), list):
        msg = f"{path}: expected a JSON object with a 'corrections' list (as exported from report.html)"
        raise ReviewError(msg)
    sha, ours = doc.get("input_sha256"), report["input"].get("sha256")
    if not isinstance(sha, str) or not sha:
        msg = f"{path}: 'input_sha256' must be a string (the sha256 of the screened input), got {sha!r:.80}"
        raise ReviewError(msg)
    if sha != ours:
        msg = f"{path}: corrections were made for another input (sha256 {sha[:12]}…, this report {str(ours)[:12]}…)"
        raise ReviewError(msg)
    _check_screening(path, doc.get("screening"), screening_of(report))
    return int(version)


def _check_screening(path: Path, theirs: Any, ours: dict[str, Any]) -> None:
    """Compare the screening recorded by the page (when there is one) with this report's.

    Raises:
        ReviewError: ``theirs`` is not an object, or one of its fields differs from this report's.
    """
    if theirs is None:
        return  # a hand-made file, or one exported by a page rendered before the page recorded it
    if not isinstance(theirs, dict):
        msg = f"{path}: 'screening' must be an object, got {theirs!r:.80}"
        raise ReviewError(msg)
    for key, label in SCREENING_FIELDS.items():
        if key in theirs and _canonical(theirs[key]) != _canonical(ours.get(key)):
            msg = f"{path}: made on another screening of this input ({label} {_short(theirs[key])}, this report {_short(ours.get(key))}); nothing applied"
            raise ReviewError(msg)


def _canonical(value: Any) -> str:
    """A JSON text that compares equal for equal JSON values (key order and 1 vs 1.0 aside)."""

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [norm(x) for x in v]
        return v

    return json.dumps(norm(value), sort_keys=True, ensure_ascii=False, default=str)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:79] + "…"
