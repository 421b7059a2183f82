"""Screening again into a folder that holds a review: refused unless asked, then the review archived.

No screening erases a review. ``run`` and ``batch`` refuse (exit 2) to screen an input again into a
folder whose report holds a review or a signature (:func:`held_reviews` names them), unless
``--rescreen`` is given. The report writer then archives the reviewed report before it writes the
new one (:func:`archive_review`): the reviewed report.json, its trail closed with a ``superseded``
event, goes with report.html, cells.parquet, cells.geojson, the audit anchor and ``versions/``
into ``superseded/<UTC time>/``; the new report's trail starts with a ``screened`` event that
names that folder and the version it supersedes (:func:`screened_trail`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from wsi_screen.errors import OutputError
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_write_text
from wsi_screen.io import real_dir
from wsi_screen.io import refuse_symlink
from wsi_screen.report_files import CELLS_GEOJSON
from wsi_screen.report_files import CELLS_PARQUET
from wsi_screen.report_files import MAX_REPORT_JSON_BYTES
from wsi_screen.report_files import REPORT_HTML
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.audit import VERSIONS_DIR
from wsi_screen.reports.audit import append_event
from wsi_screen.reports.audit import check_trail
from wsi_screen.reports.audit import current_version
from wsi_screen.reports.audit import start_trail
from wsi_screen.reports.audit_anchor import ANCHOR_NAME
from wsi_screen.reports.audit_anchor import SUPERSEDED_DIR
from wsi_screen.reports.audit_anchor import write_anchor
from wsi_screen.textfiles import read_json_object

log = logging.getLogger(__name__)

FIELDS_DIR = "fields"
"""A case's field reports (``OUT/<case>/fields/<field>/``): reviewed one by one."""
MAX_NAMED = 3
"""Reviewed reports named in one refusal; the rest are counted."""


class ReviewHeldError(WsiScreenError):
    """Screening again would replace a reviewed or signed report (``--rescreen`` archives it)."""

    stage = "report"


def _read(path: Path) -> dict[str, Any] | None:
    """report.json, or None when it is missing or cannot be read as a report."""
    if not path.is_file() or path.is_symlink():
        return None
    try:
        return read_json_object(path, error=WsiScreenError, max_bytes=MAX_REPORT_JSON_BYTES)
    except WsiScreenError as e:
        log.debug("%s: not read (%s)", path, e)
        return None


def review_state(report: dict[str, Any] | None) -> str | None:
    """What review a report holds, in words (``version 2 signed by AB at ...``); None when none."""
    if report is None:
        return None
    block, review = report.get("signoff"), report.get("review")
    if isinstance(block, dict) and block:
        who = block.get("reviewer") or "an unnamed reviewer"
        if block.get("status") == "signed":
            return f"version {block.get('version')} signed by {who} at {block.get('at')}"
        return f"draft version {block.get('version')} reviewed by {who} at {block.get('at')}"
    if isinstance(review, dict) and review:
        if review.get("kind") == "case":
            return (
                f"the reviewed figures of field(s) {', '.join(map(str, review.get('fields_reviewed') or []))}"
            )
        return f"a review by {review.get('reviewer') or 'an unnamed reviewer'} at {review.get('reviewed_at')}"
    return None


def _held_here(folder: Path) -> str | None:
    """One line naming the review or signed versions held in ``folder``, None when none."""
    path = folder / REPORT_JSON
    what = review_state(_read(path))
    versions = folder / VERSIONS_DIR
    signed = (
        sorted(p.name for p in versions.iterdir()) if versions.is_dir() and not versions.is_symlink() else []
    )
    if what is None and signed:
        what = f"signed version(s) {', '.join(signed)} under {VERSIONS_DIR}/"
    return None if what is None else f"{path} holds {what}"


def held_reviews(folder: Path) -> list[str]:
    """Every review or signature a new screening into ``folder`` would replace (a case's fields too)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [_held_here(folder)]
    fields = folder / FIELDS_DIR
    if fields.is_dir() and not fields.is_symlink():
        found += [_held_here(f) for f in sorted(fields.iterdir()) if f.is_dir() and not f.is_symlink()]
    return [h for h in found if h is not None]


def refuse_held_reviews(folders: list[Path]) -> None:
    """Refuse a screening that would replace a review (the caller checks ``--rescreen`` first).

    Raises:
        ReviewHeldError: one of ``folders`` holds a reviewed or signed report; the message names it.
    """
    held = [h for folder in folders for h in held_reviews(folder)]
    if not held:
        return
    more = f" (and {len(held) - MAX_NAMED} more)" if len(held) > MAX_NAMED else ""
    msg = (
        f"{'; '.join(held[:MAX_NAMED])}{more}: screening again would replace the review; nothing "
        f"screened. Give --rescreen to archive the reviewed report into {SUPERSEDED_DIR}/<time>/ "
        f"beside it (with an audit event) and screen anew, or write to another -o"
    )
    raise ReviewHeldError(msg)


def archive_review(report_dir: Path) -> dict[str, Any] | None:
    """Move a reviewed report and its records out of the way of a new screening into ``report_dir``.

    The reviewed report.json (its trail closed with a ``superseded`` event when the trail holds),
    report.html, cells.parquet, cells.geojson, the audit anchor and ``versions/`` go into
    ``superseded/<UTC time>/``; links are moved, never followed. A report without a review leaves
    only its records (anchor, ``versions/``) to move, as an earlier screening's.

    Returns:
        What the new report's ``screened`` event records of it (``folder``, ``version``, ``status``,
        ``reviewer``, ``trail_head``), or None when there was nothing to archive.

    Raises:
        OutputError: ``superseded/`` is a link, or the files cannot be moved.
    """
    report_dir = Path(report_dir)
    report = _read(report_dir / REPORT_JSON)
    state = review_state(report)
    records = [
        p for p in (report_dir / ANCHOR_NAME, report_dir / VERSIONS_DIR) if p.exists() or p.is_symlink()
    ]
    if state is None and not records:
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    refuse_symlink(report_dir / SUPERSEDED_DIR)
    dest = real_dir(report_dir / SUPERSEDED_DIR / stamp)
    info: dict[str, Any] = {"folder": f"{SUPERSEDED_DIR}/{stamp}"}
    try:
        if report is not None and state is not None:
            info.update(_archive_report(report_dir, report, dest, info["folder"]))
            moved = [report_dir / n for n in (REPORT_HTML, CELLS_PARQUET, CELLS_GEOJSON)]
            records = [p for p in records if p.name != ANCHOR_NAME or not (dest / ANCHOR_NAME).exists()]
        else:
            moved = []
        for path in [*moved, *records]:
            if path.exists() or path.is_symlink():
                path.rename(dest / path.name)
        if report is not None and state is not None:
            (report_dir / REPORT_JSON).unlink()
            (report_dir / ANCHOR_NAME).unlink(missing_ok=True)
    except OSError as e:
        msg = f"{report_dir}: cannot archive the reviewed report before screening again: {e.strerror or e}"
        raise OutputError(msg) from e
    log.warning(
        "%s: screened again; %s is kept in %s", report_dir, state or "the earlier review records", dest
    )
    return info


def _archive_report(report_dir: Path, report: dict[str, Any], dest: Path, folder: str) -> dict[str, Any]:
    """Write the reviewed report.json (trail closed by a ``superseded`` event) and its anchor into ``dest``."""
    where = str(report_dir / REPORT_JSON)
    try:
        trail: list[dict[str, Any]] | None = (
            check_trail(report["audit"], where=where) if report.get("audit") else start_trail(report)
        )
    except WsiScreenError as e:  # archived as it is; `review verify` on the archive names the break
        log.warning("%s; archived without a closing event", e)
        trail = None
    block: dict[str, Any] = report["signoff"] if isinstance(report.get("signoff"), dict) else {}
    if trail is not None:
        trail = append_event(
            trail,
            action="superseded",
            who=None,
            version=current_version(report),
            details={"reason": "screened again into this folder (--rescreen)", "archived_in": folder},
        )
        report = {**report, "audit": trail}
    atomic_write_text(dest / REPORT_JSON, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if trail is not None:
        write_anchor(dest, trail)
    return {
        "version": current_version(report),
        "status": block.get("status", "draft"),
        "reviewer": block.get("reviewer") or (report.get("review") or {}).get("reviewer"),
        "trail_head": trail[-1]["hash"] if trail else None,
    }


def screened_trail(report: dict[str, Any], supersedes: dict[str, Any]) -> list[dict[str, Any]]:
    """The new report's trail: its ``screened`` event, naming the archived review it supersedes."""
    first = start_trail({k: v for k, v in report.items() if k != "audit"})[0]
    details = {**first["details"], "supersedes": supersedes}
    return append_event([], action="screened", who=None, version=0, details=details, at=first["at"])
