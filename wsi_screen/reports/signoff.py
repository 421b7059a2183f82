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

from wsi_screen.io import sha256_now
from wsi_screen.report_files import CELLS_PARQUET
from wsi_screen.report_files import REPORT_HTML
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.audit import VERSIONS_DIR
from wsi_screen.reports.audit import AuditError
from wsi_screen.reports.audit import append_event
from wsi_screen.reports.audit import check_trail
from wsi_screen.reports.audit import check_versions
from wsi_screen.reports.audit import current_version
from wsi_screen.reports.audit import freeze_version
from wsi_screen.reports.audit import last_signed
from wsi_screen.reports.audit import now_utc
from wsi_screen.reports.audit import start_trail
from wsi_screen.reports.audit_anchor import check_anchor

__all__ = [
    "AuditError",
    "begin_review",
    "checked_trail",
    "finish_signing",
    "interrupted_signing",
    "signoff_view",
]

SIGNED_FILES = (REPORT_JSON, REPORT_HTML, CELLS_PARQUET)
"""The files a signature freezes under ``versions/v<N>/``."""


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
        AuditError: the trail, its anchor, the sign-off or a signed version was altered, or
            ``sign`` without a reviewer.
    """
    trail = checked_trail(report_dir, report)
    if sign and not reviewer:
        msg = f"{report_dir}: signing needs a reviewer (--reviewer, or the Reviewer field of the page)"
        raise AuditError(msg)
    version = current_version(report) + 1
    at = now_utc()
    details = {**corrections, "changes": changes, "flags_changed": flags_changed, "comment": comment,
               "sign": sign}  # fmt: skip
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


def checked_trail(report_dir: Path, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's audit trail, checked every way it can be.

    The hash chain, the anchor beside the report, the signed versions, and the ``signoff`` block
    against the trail.

    Raises:
        AuditError: any of them does not hold; the message names the file and what is missing.
    """
    where = str(Path(report_dir) / "report.json")
    trail = check_trail(report["audit"], where=where) if report.get("audit") else start_trail(report)
    check_anchor(report_dir, report, trail)
    _check_signoff(where, report.get("signoff"), trail)
    check_versions(report_dir, trail)
    return trail


def _check_signoff(where: str, block: Any, trail: list[dict[str, Any]]) -> None:
    """``signoff`` must state the trail's last version, signed exactly when the trail signed it."""
    reviews = [e for e in trail if e.get("action") == "review_applied"]
    if not reviews:
        if block:
            msg = (
                f"{where}: 'signoff' names a version, but the audit trail records no review; nothing applied"
            )
            raise AuditError(msg)
        return
    version = int(reviews[-1]["version"])
    signed = any(e.get("action") == "signed" and e.get("version") == version for e in trail)
    want = (version, "signed" if signed else "draft")
    got = (block.get("version"), block.get("status")) if isinstance(block, dict) else None
    if (
        got == (version, "signed")
        and trail[-1] is reviews[-1]
        and (trail[-1].get("details") or {}).get("sign")
    ):
        msg = f"{where}: the signing of version {version} did not finish (the run stopped); the next 'review apply' completes it"
        raise AuditError(msg)
    if got != want:
        said = "nothing" if got is None else f"version {got[0]} {got[1]}"
        msg = f"{where}: 'signoff' says {said}, the audit trail version {want[0]} {want[1]}: the sign-off was altered; nothing applied"
        raise AuditError(msg)


def finish_signing(report_dir: Path, report: dict[str, Any], files: dict[str, Path]) -> list[dict[str, Any]]:
    """Freeze the signed version's files and return the trail with its ``signed`` event.

    Raises:
        AuditError: ``versions/v<N>`` exists already.
    """
    block = report["signoff"]
    digests = freeze_version(report_dir, int(block["version"]), files)
    return _signed(report["audit"], block, digests)


def _signed(
    trail: list[dict[str, Any]], block: dict[str, Any], digests: dict[str, str]
) -> list[dict[str, Any]]:
    """``trail`` with the ``signed`` event of the version ``block`` describes."""
    return append_event(
        trail,
        action="signed",
        who=block["reviewer"],
        version=int(block["version"]),
        details={"files": digests, "comment": block.get("comment")},
        at=block["at"],
    )


def interrupted_signing(report_dir: Path, report: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The trail of a signing that a kill stopped between its writes, completed; None if there is none.

    ``review apply --sign`` writes the reviewed files (their last ``review_applied`` event records
    ``sign``), freezes them into ``versions/v<N>/``, then appends the ``signed`` event. A run killed
    in between leaves a report whose ``signoff`` says signed without that event: the frozen copies
    are made now if they are missing, or checked to be the files beside the report, and the event
    the run would have written is returned (the caller writes it).

    Raises:
        AuditError: the chain does not hold, or a frozen copy differs from the file it copies.
    """
    block, trail = report.get("signoff"), report.get("audit")
    if not isinstance(block, dict) or block.get("status") != "signed" or not trail:
        return None
    trail = check_trail(trail, where=str(Path(report_dir) / "report.json"))
    last = trail[-1]
    if last.get("action") != "review_applied" or last.get("version") != block.get("version"):
        return None
    if not (last.get("details") or {}).get("sign") or last.get("who") != block.get("reviewer"):
        return None  # not a signing this software started: _check_signoff names it
    files = {n: Path(report_dir) / n for n in SIGNED_FILES}
    final = Path(report_dir) / VERSIONS_DIR / f"v{block['version']}"
    if not final.exists():
        return _signed(trail, block, freeze_version(report_dir, int(block["version"]), files))
    digests = {}
    for name, path in files.items():
        frozen = final / name
        digest = sha256_now(frozen) if frozen.is_file() and not frozen.is_symlink() else None
        if digest is None or not path.is_file() or digest != sha256_now(path):
            msg = f"{frozen}: not a copy of {path.name} beside the report; the signing of version {block['version']} cannot be completed; nothing applied"
            raise AuditError(msg)
        digests[name] = digest
    return _signed(trail, block, digests)


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
            if d.get("field"):
                what += f"; after the review of field {d['field']}"
            if d.get("sign") and not d.get("changes") and not d.get("file") and not d.get("field"):
                what = "signed as it stood" + what.removeprefix("no cell changed")
            if d.get("comment"):
                what += f"; comment: {d['comment']}"
        elif e.get("action") == "signed":
            what = "signed; frozen in versions/v{}/ ({})".format(
                e.get("version"), ", ".join(sorted(d.get("files") or {}))
            )
        elif e.get("action") == "screened":
            what = f"screened: {d.get('cells_detected')} detections, detector {d.get('detector')}"
            was = d.get("supersedes") or {}
            if was.get("version"):
                what += (
                    f"; screened again over version {was['version']} ({was.get('status')}, "
                    f"{was.get('reviewer') or 'unnamed reviewer'}), kept in {was.get('folder')}/"
                )
        elif e.get("action") == "superseded":
            what = f"superseded by a new screening; this report kept in {d.get('archived_in')}/"
        else:
            what = e.get("action", "")
        rows.append({**e, "what": what})
    return rows
