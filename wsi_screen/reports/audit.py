"""Sign-off and audit trail: who changed what and when, and signed versions that cannot change silently.

report.json carries

- ``audit``: an append-only list of events (``screened``, ``review_applied``, ``signed``, and
  ``superseded`` closing a report archived by a new screening). Each event holds its sequence number, time (UTC), who, the report version it made, what changed, the hash
  of the event before it (``prev``) and its own hash (``hash``: sha256 of its canonical JSON without
  ``hash``). Editing, removing or reordering an event breaks the chain, and :func:`check_trail`
  names the first broken event; a review is refused on such a report.
- ``signoff``: the state of the version the figures are: ``draft`` (reviewed, not signed; with the
  signed version it amends, if any) or ``signed`` (by whom, when, with what comment).

Signing freezes the version: ``versions/v<N>/`` beside the report receives read-only copies of
report.json, cells.parquet and report.html, and the ``signed`` event records their sha256. A later
review makes version N + 1 (a draft that names the signed version it amends); the frozen copies are
never rewritten, and :func:`check_versions` says when one was altered or removed.

The chain makes changes evident, not impossible: it is the record a lab keeps; it does not replace
access control on the folder or a laboratory information system's electronic signature.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from wsi_screen import __version__
from wsi_screen.errors import OutputError
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import real_dir
from wsi_screen.io import refuse_links
from wsi_screen.io import sha256_now
from wsi_screen.report_files import MAX_REPORT_JSON_BYTES
from wsi_screen.textfiles import read_json

VERSIONS_DIR = "versions"
GENESIS = "0" * 64  # the ``prev`` of the first event
ACTIONS = ("screened", "review_applied", "signed", "identifiers_set", "superseded")
_VERSION_DIR = re.compile(r"^v([0-9]{1,9})$")


class AuditError(WsiScreenError):
    """The audit trail or a signed version of a report was altered; the message names what."""

    stage = "review"


def now_utc() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal data gives equal text (and equal hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_hash(event: dict[str, Any]) -> str:
    """sha256 of an event's canonical JSON, its ``hash`` field left out."""
    body = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def append_event(
    trail: list[dict[str, Any]],
    *,
    action: str,
    who: str | None,
    version: int,
    details: dict[str, Any],
    at: str | None = None,
) -> list[dict[str, Any]]:
    """A new trail: ``trail`` with one event appended (``trail`` itself is not changed)."""
    if action not in ACTIONS:
        msg = f"unknown audit action {action!r}; known: {', '.join(ACTIONS)}"
        raise ValueError(msg)
    event: dict[str, Any] = {
        "seq": len(trail) + 1,
        "at": at or now_utc(),
        "who": who,
        "action": action,
        "version": int(version),
        "software": f"wsi-screen {__version__}",
        "details": details,
        "prev": trail[-1]["hash"] if trail else GENESIS,
    }
    event["hash"] = event_hash(event)
    return [*trail, event]


def check_trail(trail: Any, *, where: str) -> list[dict[str, Any]]:
    """Check the hash chain of an audit trail read from a report.

    Returns:
        The trail (a list of events), unchanged.

    Raises:
        AuditError: not a list of events, or an event altered, removed or reordered (names ``where``
            and the first event that does not hold).
    """
    if not isinstance(trail, list) or not all(isinstance(e, dict) for e in trail):
        msg = f"{where}: 'audit' must be a list of events"
        raise AuditError(msg)
    prev = GENESIS
    for k, event in enumerate(trail, start=1):
        if event.get("seq") != k or event.get("prev") != prev or event.get("hash") != event_hash(event):
            msg = (
                f"{where}: audit trail altered at event {k} ({event.get('action', '?')}, "
                f"{event.get('at', '?')}): its hash chain does not hold; nothing applied"
            )
            raise AuditError(msg)
        prev = event["hash"]
    return list(trail)


def start_trail(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The trail of a report, or for a report written before trails existed, its ``screened`` event."""
    trail = report.get("audit")
    if trail:
        return list(trail)
    details = {
        "input_sha256": report["input"].get("sha256"),
        "model_sha256": report["model"].get("sha256"),
        "detector": (report.get("detector") or {}).get("name"),
        "cells_detected": report.get("cells_detected"),
    }
    return append_event(
        [], action="screened", who=None, version=0, details=details, at=report.get("generated_at")
    )


def current_version(report: dict[str, Any]) -> int:
    """The version number of a report's figures: 0 as screened, +1 per review applied."""
    return int((report.get("signoff") or {}).get("version", 0))


def last_signed(trail: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest ``signed`` event of a trail, if any."""
    return next((e for e in reversed(trail) if e.get("action") == "signed"), None)


def freeze_version(report_dir: Path, version: int, files: dict[str, Path]) -> dict[str, str]:
    """Copy ``files`` (name -> path) into ``versions/v<version>/``, read-only; return their sha256.

    The copies are written into a temporary folder renamed into place, so a version folder is
    complete or absent. ``versions/`` and the version folder must be real folders inside the
    report's folder: nothing is written through a symbolic link.

    Raises:
        AuditError: the version folder exists already (a signed version is never rewritten), or
            ``versions/`` (or a folder in it) is a symbolic link.
    """
    versions = Path(report_dir) / VERSIONS_DIR
    final = versions / f"v{version}"
    tmp = final.with_name(f".{final.name}.tmp")
    try:
        refuse_links((final, tmp))
        real_dir(versions)
    except OutputError as e:
        raise AuditError(str(e)) from e
    if final.exists():
        msg = f"{final}: signed version {version} exists already; a signed version is never rewritten"
        raise AuditError(msg)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    digests: dict[str, str] = {}
    try:
        for name, src in files.items():
            dst = tmp / name
            shutil.copyfile(src, dst, follow_symlinks=False)
            dst.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            digests[name] = sha256_now(dst)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return digests


def check_versions(report_dir: Path, trail: list[dict[str, Any]]) -> None:
    """Check the signed versions against the trail, both ways.

    Every ``signed`` event's frozen files must be present (real files, not links) and unchanged;
    every ``versions/v<N>/`` folder must have its ``signed`` event in the trail (a trail whose
    signature was dropped leaves its version folder behind); and the trail recorded in each frozen
    report.json (the trail as it was when that version was signed) must be the start of ``trail``.

    Raises:
        AuditError: a frozen file missing, altered or a link; a version folder without its
            ``signed`` event; or a trail that does not continue the one a version froze.
    """
    folder = Path(report_dir) / VERSIONS_DIR
    signed = {int(e["version"]): e for e in trail if e.get("action") == "signed"}
    for version, event in signed.items():
        for name, digest in (event.get("details") or {}).get("files", {}).items():
            path = folder / f"v{version}" / name
            if path.is_symlink() or not path.is_file():
                msg = f"{path}: signed version {version} is missing this file; nothing applied"
                raise AuditError(msg)
            if sha256_now(path) != digest:
                msg = f"{path}: changed after it was signed (sha256 differs from the audit trail); nothing applied"
                raise AuditError(msg)
        _check_frozen_trail(folder / f"v{version}" / "report.json", trail)
    if folder.is_symlink():
        msg = f"{folder}: is a symbolic link; signed versions are real folders beside the report; nothing applied"
        raise AuditError(msg)
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.is_symlink():
            msg = f"{entry}: is a symbolic link; signed versions are real folders beside the report; nothing applied"
            raise AuditError(msg)
        m = _VERSION_DIR.match(entry.name)
        if m and int(m.group(1)) not in signed:
            msg = (
                f"{entry}: signed version {m.group(1)} has no 'signed' event in the audit trail of "
                f"{Path(report_dir) / 'report.json'}: the trail was cut; nothing applied"
            )
            raise AuditError(msg)


def _check_frozen_trail(frozen: Path, trail: list[dict[str, Any]]) -> None:
    """The trail a frozen report.json recorded (head hash and length) must start ``trail``."""
    if not frozen.is_file():
        return  # a version that did not freeze report.json (checked by its digests above)
    try:
        doc = read_json(frozen, error=AuditError, max_bytes=MAX_REPORT_JSON_BYTES)
    except AuditError as e:
        msg = f"{e}; nothing applied"
        raise AuditError(msg) from e
    then = doc.get("audit") if isinstance(doc, dict) else None
    if not isinstance(then, list) or not then or not isinstance(then[-1], dict):
        return  # signed before trails existed
    n = len(then)
    if len(trail) < n or trail[n - 1].get("hash") != then[-1].get("hash"):
        msg = (
            f"{frozen}: this signed version recorded an audit trail of {n} event(s) that "
            f"the trail of report.json does not continue: events were removed or replaced; nothing applied"
        )
        raise AuditError(msg)
