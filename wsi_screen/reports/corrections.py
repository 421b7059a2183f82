"""Reviewer corrections: read a corrections file exported from report.html and check it against a report.

A corrections file names cells by ``cell_id`` of one screening's cells.parquet, so it is accepted
only for the input (``input_sha256``) and the screening (pixel size, model, detector, report time)
it was made on. :mod:`wsi_screen.reports.review` applies what this module has validated.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi_screen import textfiles
from wsi_screen.errors import WsiScreenError

log = logging.getLogger(__name__)

CORRECTIONS_FORMAT = "wsi-screen-corrections"
CORRECTIONS_VERSION = 1
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
    """Validated corrections: cell id -> reviewed class code."""

    classes: dict[int, str]
    reviewer: str | None
    source: Path


MAX_JSON_BYTES = 256 << 20
"""Largest report.json or corrections file read (a 2,000-cell slide's report is a few MB)."""


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file.

    Raises:
        ReviewError: the file is missing or not JSON; the message names it and ``what`` it is.
    """
    if not path.exists():
        msg = f"{path}: {what} not found"
        raise ReviewError(msg)
    try:  # size, nesting depth and UTF-8 checked: a one-line error, never a RecursionError
        return textfiles.read_json(path, error=ReviewError, max_bytes=MAX_JSON_BYTES)
    except ReviewError as e:
        msg = f"cannot read {what}: {e}"
        raise ReviewError(msg) from e


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
    path: Path, *, report: dict[str, Any], predicted: dict[int, str], class_names: list[str]
) -> Corrections:
    """Read a corrections file exported from report.html and check it was made on this report.

    The file must carry the format marker and the input's sha256; the screening it records (pixel
    size, model, detector, report time) and the predicted class of each corrected cell, where
    given, must be those of ``report`` and its cells table (``predicted``: cell id -> class).

    Raises:
        ReviewError: malformed file, unknown cell ids or class codes, or corrections made for
            another input or another screening of it; the message names the file.
    """
    path = Path(path)
    doc = read_json(path, "corrections file")
    _check_header(path, doc, report)
    out: dict[int, str] = {}
    bad_ids: list[str] = []
    bad_classes: set[str] = set()
    mismatch: tuple[int, str] | None = None
    for k, item in enumerate(doc["corrections"]):
        cid, code, was = _parse_item(path, k, item)
        if isinstance(cid, bool) or not isinstance(cid, int) or cid not in predicted:
            bad_ids.append(repr(cid))
            continue
        if not isinstance(code, str) or code not in class_names:
            bad_classes.add(repr(code))
            continue
        if was is not None and was != predicted[cid] and mismatch is None:
            mismatch = (cid, was)
        if cid in out and out[cid] != code:
            log.warning("%s: cell %d corrected twice; the later class %s is used", path, cid, code)
        out[cid] = code
    if bad_ids:
        msg = f"{path}: unknown cell id(s) {', '.join(bad_ids[:10])}{' …' if len(bad_ids) > 10 else ''}; this report has cells 0..{max(predicted, default=-1)}"
        raise ReviewError(msg)
    if bad_classes:
        msg = f"{path}: unknown class code(s) {', '.join(sorted(bad_classes))}; the model's classes are {', '.join(class_names)}"
        raise ReviewError(msg)
    if mismatch is not None:
        cid, was = mismatch
        msg = f"{path}: cell {cid} was predicted {was} where the corrections were made, this report predicts {predicted[cid]}: made on another screening of this input; nothing applied"
        raise ReviewError(msg)
    reviewer = doc.get("reviewer")
    if isinstance(reviewer, str):
        check_reviewer(reviewer, str(path))
    return Corrections(out, reviewer if isinstance(reviewer, str) and reviewer else None, path)


MAX_REVIEWER_CHARS = 200
"""Longest reviewer name accepted (a name, initials or a staff id; never a document)."""


def check_reviewer(name: str, where: str) -> None:
    """Refuse a reviewer name that is too long or holds control characters (it goes into reports)."""
    if len(name) > MAX_REVIEWER_CHARS:
        msg = f"{where}: reviewer name of {len(name)} characters; at most {MAX_REVIEWER_CHARS}"
        raise ReviewError(msg)
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        msg = f"{where}: reviewer name holds control characters"
        raise ReviewError(msg)


def _check_header(path: Path, doc: Any, report: dict[str, Any]) -> None:
    """Check the format marker, version, input sha256 and screening of a corrections file.

    Raises:
        ReviewError: not a corrections file of this format, or made for another input or screening.
    """
    if not isinstance(doc, dict) or doc.get("format") != CORRECTIONS_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        msg = f'{path}: not a corrections file exported from report.html (expected "format": "{CORRECTIONS_FORMAT}", got {got!r:.60})'
        raise ReviewError(msg)
    version = doc.get("version", CORRECTIONS_VERSION)
    if isinstance(version, bool) or version != CORRECTIONS_VERSION:
        msg = f"{path}: corrections format version {version!r:.40} is not supported (this wsi-screen reads version {CORRECTIONS_VERSION})"
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


def _parse_item(path: Path, k: int, item: Any) -> tuple[Any, Any, str | None]:
    """``(cell_id, class, predicted or None)`` of the ``k``-th correction, unchecked against the report.

    Raises:
        ReviewError: not an object with ``cell_id`` and ``class``, or a ``predicted`` that is not a string.
    """
    if not isinstance(item, dict) or "cell_id" not in item or "class" not in item:
        msg = f"{path}: correction #{k + 1} must be an object with 'cell_id' and 'class', got {item!r:.80}"
        raise ReviewError(msg)
    was = item.get("predicted")
    if was is not None and not isinstance(was, str):
        msg = f"{path}: correction #{k + 1}: 'predicted' must be a class code, got {was!r:.40}"
        raise ReviewError(msg)
    return item["cell_id"], item["class"], was
