"""Sign a case as a case: ``wsi-screen review sign OUT/<case> --reviewer NAME``.

A case is reviewed field by field (each field's own report; the case's pooled figures follow,
:mod:`wsi_screen.reports.case_review`) and signed as a whole: the case's figures as they stand
become a signed version, frozen like a field's (``versions/v<N>/``: report.json, report.html,
cells.parquet, their sha256 in a ``signed`` event of the case's audit trail, anchored beside it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_path
from wsi_screen.report_files import REPORT_HTML
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.audit_anchor import write_anchor
from wsi_screen.reports.case_review import case_fields
from wsi_screen.reports.case_review import field_row
from wsi_screen.reports.case_review import read_case
from wsi_screen.reports.corrections import ReviewError
from wsi_screen.reports.corrections import check_reviewer
from wsi_screen.reports.json_report import validate_report
from wsi_screen.reports.json_report import write_report_json
from wsi_screen.reports.review_guard import refuse_review_links
from wsi_screen.reports.signoff import SIGNED_FILES
from wsi_screen.reports.signoff import begin_review
from wsi_screen.reports.signoff import checked_trail
from wsi_screen.reports.signoff import finish_signing

log = logging.getLogger(__name__)


def is_case(report_dir: Path) -> bool:
    """Whether ``report_dir`` holds a case's report (``input.kind`` ``case``)."""
    try:
        read_case(report_dir)
    except WsiScreenError:
        return False
    return True


def sign_case(case_dir: Path, *, reviewer: str, comment: str | None = None) -> tuple[dict[str, Any], bool]:
    """Sign the case in ``case_dir`` as it stands; return its report and whether a version was signed.

    The case's figures (pooled over its fields as reviewed) become its next version, signed by
    ``reviewer``; a case whose current version is signed already (and no new comment) is left
    as it is.

    Raises:
        ReviewError: no reviewer, a link among the files it writes, a case report that cannot be
            read, or an audit trail, anchor or signed version that does not hold.
    """
    from wsi_screen.case_screen import write_case_html

    case_dir = Path(case_dir)
    refuse_review_links(case_dir)
    check_reviewer(reviewer, where="--reviewer")
    report = read_case(case_dir)
    block = report.get("signoff") or {}
    try:
        if block.get("status") == "signed" and comment in (None, block.get("comment")):
            checked_trail(case_dir, report)
            return report, False
        trail, signoff = begin_review(
            case_dir, report, reviewer=reviewer, sign=True, changes=[], flags_changed=[],
            corrections={"file": None, "sha256": None, "counts": {}}, comment=comment,
        )  # fmt: skip
    except WsiScreenError as e:  # the message names the file
        raise ReviewError(str(e)) from e
    new = {**report, "audit": trail, "signoff": signoff}
    new["fields"] = [field_row(case_dir, f) for f in report.get("fields") or []]
    try:
        validate_report(new)
        with atomic_path(case_dir / REPORT_HTML) as tmp_html:
            write_case_html(new, case_fields(new), tmp_html)
        write_report_json(new, case_dir / REPORT_JSON)
        write_anchor(case_dir, new["audit"])
        new["audit"] = finish_signing(case_dir, new, {n: case_dir / n for n in SIGNED_FILES})
        write_report_json(new, case_dir / REPORT_JSON)
        write_anchor(case_dir, new["audit"])
    except (OSError, WsiScreenError) as e:
        msg = f"{case_dir}: cannot sign the case: {e}"
        raise ReviewError(msg) from e
    log.info("%s: case signed by %s as version %s", case_dir, reviewer, signoff["version"])
    return new, True
