"""What a review checks before it writes and keeps after: no links, a report it can read back, the anchor.

:func:`wsi_screen.reports.review.apply_review` calls these around its writes: the folder's outputs
are checked for symbolic links before anything is written, a signing a kill left unfinished is
completed first, the reviewed report.json must stay small enough to be reviewed again, and the
audit anchor (:mod:`wsi_screen.reports.audit_anchor`) follows every report.json written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from wsi_screen.errors import WsiScreenError
from wsi_screen.io import refuse_links
from wsi_screen.report_files import CELLS_GEOJSON
from wsi_screen.report_files import CELLS_PARQUET
from wsi_screen.report_files import MAX_REPORT_JSON_BYTES
from wsi_screen.report_files import REPORT_HTML
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.audit import VERSIONS_DIR
from wsi_screen.reports.audit_anchor import ANCHOR_NAME
from wsi_screen.reports.audit_anchor import write_anchor
from wsi_screen.reports.corrections import ReviewError
from wsi_screen.reports.json_report import write_report_json
from wsi_screen.reports.signoff import interrupted_signing

log = logging.getLogger(__name__)

REVIEW_MARGIN_BYTES = 256 << 10
"""Room left in report.json for the signing that may follow (its event, the frozen files' hashes)."""
WRITTEN = (REPORT_JSON, REPORT_HTML, CELLS_PARQUET, CELLS_GEOJSON, ANCHOR_NAME, VERSIONS_DIR)
"""What a review writes in the report's folder: none of them may be a symbolic link."""


def refuse_review_links(report_dir: Path) -> None:
    """Refuse the review before it writes anything when the folder or one of its outputs is a link.

    Raises:
        ReviewError: ``report_dir`` or a file or folder a review writes in it is a symbolic link.
    """
    try:
        refuse_links([report_dir, *(report_dir / name for name in WRITTEN)])
    except WsiScreenError as e:
        msg = f"{e}; nothing applied"
        raise ReviewError(msg) from e


def finish_interrupted_signing(report_dir: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Complete a signing a kill stopped between its writes (its frozen copies, its event); the report.

    Raises:
        ReviewError: the signing cannot be completed (the message names the file).
    """
    try:
        trail = interrupted_signing(report_dir, report)
        if trail is None:
            return report
        report = {**report, "audit": trail}
        write_report_json(report, report_dir / REPORT_JSON)
        write_anchor(report_dir, trail)
    except (OSError, WsiScreenError) as e:
        msg = f"{report_dir}: cannot complete the interrupted signing: {e}"
        raise ReviewError(msg) from e
    log.warning("%s: completed the signing of version %s that an earlier run left unfinished",
                report_dir, report["signoff"]["version"])  # fmt: skip
    return report


def check_review_size(path: Path, report: dict[str, Any]) -> None:
    """Refuse a review whose report.json could not be read back for the next review.

    Raises:
        ReviewError: the reviewed report.json would be larger than a review reads.
    """
    size = len(json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"))
    limit = MAX_REPORT_JSON_BYTES - REVIEW_MARGIN_BYTES
    if size > limit:
        msg = (
            f"{path}: the reviewed report would be {size / 2**20:.1f} MiB, over the {limit / 2**20:.1f} MiB "
            f"that keeps it reviewable (corrections and the audit trail are kept in it); nothing applied"
        )
        raise ReviewError(msg)


def write_review_anchor(report_dir: Path, trail: list[dict[str, Any]]) -> None:
    """Write the audit anchor after report.json (a kill before it leaves the anchor behind, never ahead)."""
    try:
        write_anchor(report_dir, trail)
    except (OSError, WsiScreenError) as e:
        msg = f"{report_dir}: cannot write the audit anchor: {e}"
        raise ReviewError(msg) from e
