"""Plan a batch: hash every input and decide, from the ledger and its report, to skip or screen it.

An input counts as done only when its ledger line and its report.json carry the same run key (the
hash of the input, the model and the settings); see :func:`wsi_screen.batch.finished.is_finished`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi_screen.batch.discover import BatchInput
from wsi_screen.batch.finished import Expected
from wsi_screen.batch.finished import is_finished
from wsi_screen.batch.options import BatchResult
from wsi_screen.batch.summary import STATUS_OK
from wsi_screen.batch.summary import STATUS_SKIPPED
from wsi_screen.batch.summary import failed_row
from wsi_screen.batch.summary import not_run_row
from wsi_screen.batch.summary import ok_row
from wsi_screen.batch.summary import read_report
from wsi_screen.batch.summary import report_run_key
from wsi_screen.batch.summary import stamp_run_key
from wsi_screen.cases import case_from_folder
from wsi_screen.errors import InputError
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import sha256_file
from wsi_screen.ledger import Ledger
from wsi_screen.ledger import run_key
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.rescreen import refuse_held_reviews
from wsi_screen.sources import input_sha256
from wsi_screen.types import Failure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    """An input to screen, with its content hash and the run key its report.json must carry."""

    item: BatchInput
    sha256: str
    key: str


@dataclass(frozen=True)
class PlanContext:
    """What every input of a batch is checked against.

    Attributes:
        model_sha: hash of the classifier weights.
        settings: hash of the resolved settings (:func:`wsi_screen.ledger.settings_hash`).
        config: the resolved configuration as echoed into reports.
        mpp: ``--mpp`` given to the batch (None when not given).
        rescreen: screen again over a reviewed report (the writer archives it); otherwise an input
            to screen again whose folder holds a review stops the batch (:class:`ReviewHeldError`).
    """

    model_sha: str
    settings: str
    config: dict[str, Any]
    mpp: float | None
    rescreen: bool = False


def plan_all(
    items: list[BatchInput],
    ledger: Ledger | None,
    out: Path,
    ctx: PlanContext,
    rows: dict[int, dict[str, Any]],
    todo: list[Planned],
    result: BatchResult,
) -> None:
    """Plan every input in order, filling ``rows`` and ``todo`` as it goes (Ctrl-C keeps what is planned).

    Args:
        items: the inputs found, in order.
        ledger: the loaded ledger, or None when not resuming (every input is screened).
        out: the batch output folder.
        ctx: model and settings hashes the inputs are checked against.
        rows: input index -> summary row; an input to screen gets ``{}`` (filled when screened).
        todo: the inputs to screen, appended in order.
        result: its skipped and failed counts are updated.
    """
    log.info("checking %d input(s) against the ledger (hashing their contents)", len(items))
    for i, item in enumerate(items):
        planned = plan_input(item, ledger, out, ctx)
        if isinstance(planned, dict):
            rows[i] = planned
            if planned["status"] == STATUS_OK:
                result.n_skipped += 1
            elif planned["status"] == STATUS_SKIPPED:
                result.n_not_inputs += 1
            else:
                result.n_failed += 1
        else:
            todo.append(planned)
            rows[i] = {}  # filled when screened


def plan_input(
    item: BatchInput, ledger: Ledger | None, out: Path, ctx: PlanContext
) -> Planned | dict[str, Any]:
    """Hash an input and decide: a summary row now (done earlier, or unreadable) or screen it.

    A report done earlier by a wsi-screen that wrote no run key gets it stamped in. No screening
    erases a review: an input to screen again whose folder holds a reviewed or signed report stops
    the batch unless ``ctx.rescreen`` (the writer then archives it into ``superseded/<time>/``).

    Raises:
        ReviewHeldError: the input would be screened again over a review, without ``rescreen``.
    """
    t = time.perf_counter()
    if item.skip_reason is not None:
        return not_run_row(item, item.skip_reason, STATUS_SKIPPED)
    try:
        sha = (
            case_from_folder(item.path).digest()
            if item.is_case
            else input_sha256(item.path)  # a folder of DICOM instances: over its instance files
            if item.path.is_dir()
            else sha256_file(item.path)
        )
    except InputError as e:  # a case folder that cannot be listed
        return failed_row(item, Failure(str(item.path), "read", type(e).__name__, str(e)), None, None)
    except OSError as e:
        failure = Failure(str(item.path), "read", type(e).__name__, f"{item.path}: cannot read: {e.strerror}")
        log.warning("%s: %s", item.name, failure.message)
        return failed_row(item, failure, time.perf_counter() - t, None)
    key = run_key(sha, ctx.model_sha, ctx.settings)
    entry = ledger.done(item.name, item.stem, key) if ledger else None
    path = out / item.stem / REPORT_JSON
    report = read_report(path)
    if entry is not None and report is not None:
        expected = Expected(key, sha, ctx.model_sha, ctx.config, ctx.mpp, entry.finished_at)
        if is_finished(report, expected):
            log.debug("%s: done in an earlier run with the same model and config; skipped", item.name)
            if report_run_key(report) is None:  # written before reports carried the key
                try:
                    report = stamp_run_key(report, path, key)
                except (OSError, WsiScreenError) as e:
                    log.warning("%s: could not stamp the run key into %s: %s", item.name, path, e)
            return ok_row(item, report)
    if not ctx.rescreen:
        refuse_held_reviews([path.parent])
    return Planned(item, sha, key)
