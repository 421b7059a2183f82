"""Whether an input's report folder holds a finished screening with this batch's settings."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from wsi_screen.batch.summary import report_run_key
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
        finished_at: when the ledger recorded the input as done under ``key`` (ISO 8601).
    """

    key: str
    input_sha256: str
    model_sha256: str
    config: dict[str, Any]
    mpp: float | None
    finished_at: str | None = None


def is_finished(report: dict[str, Any] | None, expected: Expected) -> bool:
    """A report counts as done when it carries this run key and this input's hash.

    A report written before reports carried the run key (wsi-screen before 2026-12) counts when it
    was written no later than the ledger recorded the input as done, and its input hash, model
    hash, echoed configuration and pixel-size choice all match, so an older batch folder resumes
    without re-screening (and without losing applied reviews). A report written after its ledger
    line (by a redo killed before stamping it) never counts.
    """
    if report is None or _get(report, "input", "sha256") != expected.input_sha256:
        return False
    key = report_run_key(report)
    if key is not None:
        return key == expected.key
    if "batch" in report:  # a batch block without a valid key: not ours
        return False
    if not _written_before(report.get("generated_at"), expected.finished_at):
        return False
    config = report.get("config")
    if _get(report, "model", "sha256") != expected.model_sha256 or not isinstance(config, dict):
        return False
    if result_config(config) != result_config(expected.config):
        return False
    source = _get(report, "input", "mpp_source")
    if expected.mpp is None:
        return source != "user"
    if source == "file":  # the file's pixel size wins over --mpp
        return True
    mpp = _get(report, "input", "mpp")
    return (
        source == "user" and isinstance(mpp, int | float) and abs(mpp - expected.mpp) <= 1e-9 * expected.mpp
    )


def _written_before(generated_at: object, finished_at: str | None) -> bool:
    if not isinstance(generated_at, str) or finished_at is None:
        return False
    try:
        return dt.datetime.fromisoformat(generated_at) <= dt.datetime.fromisoformat(finished_at)
    except (TypeError, ValueError):  # unparsable or naive vs aware
        return False


def _get(report: dict[str, Any], section: str, key: str) -> object:
    block = report.get(section)
    return block.get(key) if isinstance(block, dict) else None
