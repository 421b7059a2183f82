"""Write one screened input's reports, or leave nothing that looks like a result (run, batch, cases)."""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from wsi_screen.errors import WsiScreenError
from wsi_screen.types import Failure

if TYPE_CHECKING:
    from wsi_screen.pipeline import Screener

log = logging.getLogger(__name__)


@dataclass
class InputOutcome:
    """What ``run``/``batch`` report per input."""

    path: Path
    out_dir: Path
    failure: Failure | None
    report: dict[str, Any] | None
    seconds: float

    @property
    def summary_line(self) -> str:
        """One line of key figures, the domain state first when the figures cannot be taken as they are."""
        if not self.report:
            return ""
        from wsi_screen.domain_gate import domain_text
        from wsi_screen.reports.excluded_cells import detected_text

        r = self.report
        blast = r["blast"]["percent"]
        raised = [f["name"] for f in r["flags"] if f["status"] == "raised"]
        undecided = [f["name"] for f in r["flags"] if f["status"] == "indeterminate"]
        domain = (r.get("qc") or {}).get("domain") or {}
        lead = {
            "out_of_domain": "OUT OF DOMAIN, blast and hairy-cell flags not assessable",
            "borderline": "DOMAIN BORDERLINE, blast and hairy-cell flags not decided",
        }.get(str(domain.get("status")))
        return (
            (f"{lead}: {domain_text(domain)}; " if lead else "")
            + f"{detected_text(r)}, {r['cells_counted']} counted, "
            f"blasts {'n/a' if blast is None else f'{blast:.1f} %'}"
            + (f", flags: {', '.join(raised)}" if raised else "")
            + (f", indeterminate: {', '.join(undecided)}" if undecided else "")
            + ("" if lead else f", domain check: {domain_text(domain)}")
        )


def write_item_reports(
    screener: Screener, info: dict[str, Any], item: Any, out_dir: Path, *, run_key: str | None = None
) -> tuple[Any, dict[str, Any] | None]:
    """Write one screened input's reports into ``out_dir``; return its calls and report.

    A write that fails (a link in OUT, disk full, permission denied) becomes the input's failure
    at stage ``report`` naming the path, and its partial report files are removed; the report
    returned is then None.
    """
    from wsi_screen.reports import write_input_reports

    clf = screener.classifier
    calls = item.merged_calls(clf.class_names, clf.name)
    try:
        report = write_input_reports(
            item,
            out_dir,
            cfg=screener.cfg,
            model_info=info["model"],
            detector_info=info["detector"],
            calls=calls,
            run_key=run_key,
            identifiers=screener.identifiers,
        )
    except WsiScreenError as e:
        item.failure = Failure(str(item.path), "report", type(e).__name__, str(e))
    except OSError as e:  # disk full, permission denied: the message names the path
        where, reason = e.filename or out_dir, e.strerror or str(e)
        item.failure = Failure(str(item.path), "report", type(e).__name__, f"{where}: {reason}")
    else:
        return calls, report
    discard_partial_reports(out_dir)
    return calls, None


def discard_partial_reports(out_dir: Path) -> None:
    """Remove the report files of an input whose report.json was not written (a failed write).

    Every file is complete (atomic writes), but without report.json the set is not a report:
    it goes, so a failed input leaves nothing that looks like a result. A folder holding a
    report.json (an earlier, complete screening) or a symbolic link is left alone.
    """
    from wsi_screen.report_files import CELLS_GEOJSON
    from wsi_screen.report_files import CELLS_PARQUET
    from wsi_screen.report_files import REPORT_HTML
    from wsi_screen.report_files import REPORT_JSON
    from wsi_screen.reports.assets import ASSETS_JSON
    from wsi_screen.reports.deepzoom import VIEWER_DIR

    if out_dir.is_symlink() or not out_dir.is_dir() or (out_dir / REPORT_JSON).exists():
        return
    for name in (CELLS_PARQUET, CELLS_GEOJSON, ASSETS_JSON, REPORT_HTML):
        try:
            (out_dir / name).unlink(missing_ok=True)
        except OSError:
            log.warning("%s: could not remove a partial output", out_dir / name)
    viewer = out_dir / VIEWER_DIR
    if viewer.is_dir() and not viewer.is_symlink():
        shutil.rmtree(viewer, ignore_errors=True)
    with contextlib.suppress(OSError):
        out_dir.rmdir()  # only when empty
