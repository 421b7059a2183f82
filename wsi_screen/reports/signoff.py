"""Versions and sign-off of a reviewed report: what ``review apply`` (and ``--sign``) record.

Every ``review apply`` makes a new version of the figures (the screening is version 0): its
``review_applied`` event records who changed which cells from what to what, with the comments, and
``signoff`` says whether the version is a draft or signed. ``--sign`` signs the new version: its
files are frozen under ``versions/v<N>/`` (see :mod:`wsi_screen.reports.audit`) and a ``signed``
event records their sha256. A review of a signed report makes a draft that names the signed version
it amends; the signed one stays as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wsi_screen.reports.audit import AuditError
from wsi_screen.reports.audit import append_event
from wsi_screen.reports.audit import check_trail
from wsi_screen.reports.audit import check_versions
from wsi_screen.reports.audit import current_version
from wsi_screen.reports.audit import freeze_version
from wsi_screen.reports.audit import last_signed
from wsi_screen.reports.audit import now_utc
from wsi_screen.reports.audit import start_trail

__all__ = ["AuditError", "begin_review", "finish_signing", "signoff_view"]


def begin_review(
    report_dir: Path,
    report: dict[str, Any],
    *,
    reviewer: str | None,
    sign: bool,
    corrections: dict[str, Any],
    changes: list[dict[str, Any]],
    flags_changed: list[dict[str, Any]],
    comment: str | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The audit trail and ``signoff`` block of the next version of ``report``.

    Args:
        report_dir: the report's folder (its signed versions are checked).
        report: the report as it is now (its trail is checked).
        reviewer: who applies the review.
        sign: sign the new version.
        corrections: what identifies the corrections file (``file``, ``sha256``, counts by kind).
        changes: per-cell changes against the report as it is now (:func:`reviewed.apply_edits`).
        flags_changed: flag states that differ from the model's.
        comment: the reviewer's comment on the case.

    Returns:
        The trail with the ``review_applied`` event appended, and the new ``signoff`` block.

    Raises:
        AuditError: the trail or a signed version was altered, or ``sign`` without a reviewer.
    """
    where = str(Path(report_dir) / "report.json")
    trail = check_trail(report["audit"], where=where) if report.get("audit") else start_trail(report)
    check_versions(report_dir, trail)
    if sign and not reviewer:
        msg = f"{report_dir}: signing needs a reviewer (--reviewer, or the Reviewer field of the page)"
        raise AuditError(msg)
    version = current_version(report) + 1
    at = now_utc()
    details = {**corrections, "changes": changes, "flags_changed": flags_changed, "comment": comment}
    trail = append_event(
        trail, action="review_applied", who=reviewer, version=version, details=details, at=at
    )
    signed = last_signed(trail)
    block: dict[str, Any] = {
        "version": version,
        "status": "signed" if sign else "draft",
        "reviewer": reviewer,
        "at": at,
        "comment": comment,
        "amends": int(signed["version"]) if signed and not sign else None,
    }
    return trail, block


def finish_signing(report_dir: Path, report: dict[str, Any], files: dict[str, Path]) -> list[dict[str, Any]]:
    """Freeze the signed version's files and return the trail with its ``signed`` event.

    Raises:
        AuditError: ``versions/v<N>`` exists already.
    """
    block = report["signoff"]
    digests = freeze_version(report_dir, int(block["version"]), files)
    return append_event(
        report["audit"],
        action="signed",
        who=block["reviewer"],
        version=int(block["version"]),
        details={"files": digests, "comment": block.get("comment")},
        at=block["at"],
    )


def signoff_view(report: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of the version and its sign-off (``status``, ``text``, ``comment``)."""
    block = report.get("signoff")
    if not block:
        return {
            "status": "unreviewed",
            "text": "not reviewed: the model's figures (version 0)",
            "comment": None,
        }
    who = block.get("reviewer") or "an unnamed reviewer"
    if block.get("status") == "signed":
        text = f"version {block['version']}, signed by {who} at {block.get('at')}"
    else:
        text = f"version {block['version']}: draft reviewed by {who} at {block.get('at')}, not signed"
        if block.get("amends"):
            text += f"; amends signed version {block['amends']} (versions/v{block['amends']}/)"
    return {"status": block.get("status", "draft"), "text": text, "comment": block.get("comment")}


def audit_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The audit trail as the page's table shows it (one line of what changed per event)."""
    rows = []
    for e in report.get("audit") or []:
        d = e.get("details") or {}
        if e.get("action") == "review_applied":
            kinds: dict[str, int] = {}
            for c in d.get("changes") or []:
                kinds[c.get("kind", "?")] = kinds.get(c.get("kind", "?"), 0) + 1
            what = (
                ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items())) or "no cell changed"
            )
            if d.get("flags_changed"):
                what += "; flags " + ", ".join(
                    f"{f['name']} {f['from']}->{f['to']}" for f in d["flags_changed"]
                )
            if d.get("file"):
                what += f"; from {d['file']}"
            if d.get("comment"):
                what += f"; comment: {d['comment']}"
        elif e.get("action") == "signed":
            what = "signed; frozen in versions/v{}/ ({})".format(
                e.get("version"), ", ".join(sorted(d.get("files") or {}))
            )
        elif e.get("action") == "screened":
            what = f"screened: {d.get('cells_detected')} detections, detector {d.get('detector')}"
        else:
            what = e.get("action", "")
        rows.append({**e, "what": what})
    return rows
