"""The audit anchor: the audit trail's event hashes kept beside report.json, so a shortened trail shows.

report.json's ``audit`` chain shows an event edited or reordered, but not the last events dropped
(a signature removed and ``signoff`` set back) or the whole trail deleted: what remains is still
a valid chain. ``review apply`` therefore also writes ``REPORT/audit-anchor.jsonl``, one line per
event (``seq``, ``action``, ``version``, ``at``, ``hash``), and the next review checks report.json's
trail against it: the trail must hold every anchored event, unchanged. The anchor may lag the
trail by the events of a review killed between its two writes, never lead it (it is written
after report.json, atomically). Each signed version's frozen report.json records the trail as it
was at signing, a second anchor (:func:`wsi_screen.reports.audit.check_versions`).

A new screening into the folder (``run --rescreen``) starts a new trail:
:func:`wsi_screen.reports.rescreen.archive_review` moves the reviewed report, its anchor and signed
versions into ``superseded/<time>/``, kept, not checked.

Like the chain, the anchor makes removal evident, not impossible: someone who rewrites report.json,
the anchor and the frozen versions together is not stopped; access control on the folder is.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from wsi_screen.errors import OutputError
from wsi_screen.io import atomic_write_text
from wsi_screen.io import refuse_symlink
from wsi_screen.reports.audit import AuditError

log = logging.getLogger(__name__)

ANCHOR_NAME = "audit-anchor.jsonl"
MAX_ANCHOR_BYTES = 4 << 20
"""An anchor line is about 160 bytes: room for some 25,000 events."""
SUPERSEDED_DIR = "superseded"
"""Where a new screening puts the review records (anchor, signed versions) of the one before."""
_HASH = re.compile(r"^[0-9a-f]{64}$")
_KEYS = ("seq", "action", "version", "at", "hash")


def anchor_path(report_dir: Path) -> Path:
    """Where the anchor of the report in ``report_dir`` lives."""
    return Path(report_dir) / ANCHOR_NAME


def read_anchor(report_dir: Path) -> list[dict[str, Any]] | None:
    """The anchored events (``seq``, ``action``, ``version``, ``at``, ``hash``), None without an anchor.

    Raises:
        AuditError: the anchor is a link, too large, or not anchor lines numbered 1, 2, ...
    """
    path = anchor_path(report_dir)
    try:
        refuse_symlink(path)
    except OutputError as e:
        raise AuditError(str(e)) from e
    if not path.exists():
        return None
    try:
        size = path.stat().st_size
        if size > MAX_ANCHOR_BYTES:
            msg = f"{path}: {size:,} bytes; an audit anchor has at most {MAX_ANCHOR_BYTES:,}: the anchor was altered"
            raise AuditError(msg)
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        msg = f"{path}: cannot read the audit anchor ({e})"
        raise AuditError(msg) from e
    events: list[dict[str, Any]] = []
    for k, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):  # a deeply nested line is as altered as a broken one
            event = None
        ok = isinstance(event, dict) and sorted(event) == sorted(_KEYS)
        if not ok or event["seq"] != k or not _HASH.match(str(event["hash"])):
            msg = f"{path}: line {k} is not an audit anchor record; the anchor was altered"
            raise AuditError(msg)
        events.append(event)
    return events


def write_anchor(report_dir: Path, trail: list[dict[str, Any]]) -> None:
    """Write the anchor of ``trail`` atomically (after report.json, so it never leads the trail)."""
    lines = [json.dumps({k: e.get(k) for k in _KEYS}, ensure_ascii=False) + "\n" for e in trail]
    atomic_write_text(anchor_path(report_dir), "".join(lines))


def check_anchor(report_dir: Path, report: dict[str, Any], trail: list[dict[str, Any]]) -> None:
    """Check that report.json's trail holds every event the anchor recorded, unchanged.

    Args:
        report_dir: the report's folder.
        report: report.json as read (its ``audit`` may be missing).
        trail: its checked trail (or the trail started for a report without one).

    Raises:
        AuditError: the trail was removed, shortened or replaced; the message names what is missing.
    """
    anchored = read_anchor(report_dir)
    if not anchored:
        return
    where, path = Path(report_dir) / "report.json", anchor_path(report_dir)
    last = anchored[-1]
    if not report.get("audit"):
        msg = (
            f"{where}: has no audit trail, but {path.name} records {len(anchored)} event(s), the last "
            f"({_event_text(last)}): the audit trail was removed; nothing applied"
        )
        raise AuditError(msg)
    if len(trail) < len(anchored):
        first = anchored[len(trail)]
        msg = (
            f"{where}: the audit trail ends at event {len(trail)}, but {path.name} records "
            f"{len(anchored)}: event {first['seq']} ({_event_text(first)}) and after are missing; nothing applied"
        )
        raise AuditError(msg)
    for a, e in zip(anchored, trail, strict=False):
        if a["hash"] != e.get("hash"):
            msg = (
                f"{where}: audit event {a['seq']} is not the one {path.name} recorded "
                f"({_event_text(a)}): the audit trail was replaced; nothing applied"
            )
            raise AuditError(msg)


def _event_text(event: dict[str, Any]) -> str:
    return f"{str(event.get('action')).replace('_', ' ')}, version {event.get('version')}, {event.get('at')}"
