"""Whether an input's report folder holds a finished screening with this batch's settings."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi_screen.batch.summary import report_run_key
from wsi_screen.io import atomic_write_text
from wsi_screen.ledger import result_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Expected:
    """What a finished report must show: the run key and, for reports without one, its parts.

    Attributes:
        key: the ledger run key (input, model and settings hashes).
        input_sha256: content hash of the input.
        model_sha256: hash of the classifier weights.
        config: the resolved configuration as echoed into reports (``ScreenConfig.to_dict()``).
        mpp: ``--mpp`` given to the batch (None when not given).
    """

    key: str
    input_sha256: str
    model_sha256: str
    config: dict[str, Any]
    mpp: float | None


def is_finished(report: dict[str, Any] | None, expected: Expected) -> bool:
    """A report counts as done when it carries this run key and this input's hash.

    A report written before reports carried the run key (wsi-screen before 2026-12) counts when its
    input hash, model hash, echoed configuration and pixel-size choice all match instead, so an
    older batch folder resumes without re-screening (and without losing applied reviews).
    """
    if report is None or _get(report, "input", "sha256") != expected.input_sha256:
        return False
    key = report_run_key(report)
    if key is not None:
        return key == expected.key
    if "batch" in report:  # a batch block without a valid key: not ours
        return False
    config = report.get("config")
    if _get(report, "model", "sha256") != expected.model_sha256 or not isinstance(config, dict):
        return False
    if result_config(config) != result_config(expected.config):
        return False
    user_mpp = _get(report, "input", "mpp_source") == "user"
    if expected.mpp is None:
        return not user_mpp
    mpp = _get(report, "input", "mpp")
    return not user_mpp or (isinstance(mpp, int | float) and abs(mpp - expected.mpp) <= 1e-9 * expected.mpp)


def _get(report: dict[str, Any], section: str, key: str) -> object:
    block = report.get(section)
    return block.get(key) if isinstance(block, dict) else None


def keep_reviewed_report(report: dict[str, Any], folder: Path, name: str) -> Path | None:
    """Before an input is screened again, keep a copy of its reviewed report.json beside it.

    A changed model or configuration re-screens an input, which replaces its report; the
    morphologist's corrections must not vanish with it. Returns the copy's path (None if it
    could not be written; a warning says so).
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    copy = folder / f"report.reviewed-{stamp}.json"
    try:
        atomic_write_text(copy, json.dumps(report, indent=2) + "\n")
    except OSError as e:
        log.warning("%s: screened again; its reviewed report could not be kept (%s)", name, e)
        return None
    log.warning(
        "%s: screened again (model or settings changed); the reviewed report is kept as %s", name, copy
    )
    return copy
