"""Run a batch: discover, skip what the ledger says is done, screen the rest, summarise.

Outputs in OUT: <stem>/ per input (as ``run`` writes them), ledger.jsonl, summary.csv,
summary.parquet, index.html and run_metadata.json. Every file is written atomically; a redo
removes the input's old report.json before writing anything else, and the new report.json is
written once, last, with the run key in it (``batch.run_key``); then the input's ledger line is
appended. An input is done only when its ledger line and its report.json carry the same run key, so a
batch killed at any moment resumes with the interrupted input redone from scratch, and a folder
rewritten under other settings is never taken for the results of the settings it replaced.

Planning is :mod:`wsi_screen.batch.plan`, screening and recording :mod:`wsi_screen.batch.screening`,
the options :mod:`wsi_screen.batch.options`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wsi_screen.batch.discover import discover_inputs
from wsi_screen.batch.discover import recorded_stems
from wsi_screen.batch.options import ENGINES
from wsi_screen.batch.options import BatchOptions
from wsi_screen.batch.options import BatchResult
from wsi_screen.batch.outdir import batch_lock
from wsi_screen.batch.plan import PlanContext
from wsi_screen.batch.plan import Planned
from wsi_screen.batch.plan import plan_all
from wsi_screen.batch.screening import screen_planned
from wsi_screen.batch.summary import STATUS_OK
from wsi_screen.batch.summary import STATUS_SKIPPED
from wsi_screen.batch.summary import not_run_row
from wsi_screen.batch.summary import run_metadata
from wsi_screen.batch.summary import write_index
from wsi_screen.batch.summary import write_run_metadata
from wsi_screen.batch.summary import write_summary
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import clean_temp_files
from wsi_screen.io import sha256_file
from wsi_screen.ledger import LEDGER_NAME
from wsi_screen.ledger import Ledger
from wsi_screen.ledger import settings_hash

__all__ = ["ENGINES", "BatchOptions", "BatchResult", "run_batch"]

log = logging.getLogger(__name__)

_NOT_RUN_FAIL_FAST = "not screened: --fail-fast stopped the batch at an earlier failure"
_NOT_RUN_INTERRUPTED = "not screened: the batch was interrupted; run the same command again to resume"
_NOT_CHECKED_INTERRUPTED = (
    "not checked: the batch was interrupted while hashing the inputs; run the same command again to resume"
)


def run_batch(
    locations: Sequence[Path],
    out: Path,
    *,
    options: BatchOptions,
    screener_kwargs: dict[str, Any],
) -> BatchResult:
    """Screen every input found in ``locations`` into ``out``; resume where a killed run stopped.

    Args:
        locations: folders (or files) to screen.
        out: the batch output folder.
        options: discovery, resume, failure and engine options.
        screener_kwargs: :func:`wsi_screen.runner.build_screener` keyword arguments (``model``,
            ``config_path``, ``detector``, ``detector_weights``, ``device``, ``batch_size``, ``mpp``).

    Returns:
        The summary rows and counts; failed inputs are rows with status ``failed``.

    Raises:
        WsiScreenError: a usage or setup problem that affects the whole batch (bad config or
            model, no inputs, OUT locked by another batch, Ray cannot start).

    Example:
        >>> run_batch([Path("slides")], Path("out"), options=BatchOptions(), screener_kwargs={})  # doctest: +SKIP
    """
    from wsi_screen.aggregate import check_class_codes
    from wsi_screen.classifiers import resolve_model
    from wsi_screen.detectors import DETECTORS
    from wsi_screen.detectors import check_detector_options
    from wsi_screen.reports.json_report import SCHEMA_VERSION
    from wsi_screen.runner import resolve_config

    if options.engine not in ENGINES:
        msg = f"--engine {options.engine!r}: expected one of {', '.join(ENGINES)}"
        raise WsiScreenError(msg)
    out = Path(out).absolute()
    kw = _absolute_paths(screener_kwargs)
    cfg = resolve_config(**{k: kw.get(k) for k in _CONFIG_KEYS})
    bundle = resolve_model(kw.get("model", "default"))
    DETECTORS.get(cfg.detector.name)  # an unknown name fails now, not after Ray has started
    det_options = dict(cfg.detector.options)
    if kw.get("detector_weights") is not None:
        det_options["weights"] = kw["detector_weights"]
    try:  # before hashing any input: a typo in a class code or a bad option is found at once
        check_class_codes(cfg.aggregate, bundle.class_names)
        check_detector_options(cfg.detector.name, det_options)
    except WsiScreenError as e:
        msg = f"{kw.get('config_path') or 'configuration'}: {e}"
        raise WsiScreenError(msg) from e
    settings = settings_hash(
        cfg.to_dict(),
        mpp=kw.get("mpp"),
        detector_weights=kw.get("detector_weights"),
        detector_model=_detector_fingerprint(cfg, kw.get("detector_weights")),
        model_json=bundle.to_json(),
        report_schema=SCHEMA_VERSION,
        **({"reader": kw["reader"]} if kw.get("reader") not in (None, "auto") else {}),  # a forced reader
    )
    model_sha = bundle.sha256()
    # workers rebuild the screener from the resolved config, so all of them run the same settings
    engine_kwargs = {
        "config": cfg,
        "model": kw.get("model", "default"),
        "detector_weights": kw.get("detector_weights"),
        "mpp": kw.get("mpp"),
        "identifiers": kw.get("identifiers"),  # --ids: every worker reads the same manifest
        "reader": kw.get("reader"),
    }

    with batch_lock(out):
        clean_temp_files(out)
        items = discover_inputs(
            locations,
            recursive=options.recursive,
            pattern=options.patterns,
            exclude=[out],
            known_stems=recorded_stems(out / LEDGER_NAME),  # inputs keep their folders across runs
        )
        if not items:
            globs = ", ".join(repr(p) for p in options.patterns)
            msg = f"no input found in {', '.join(str(p) for p in locations)} (pattern {globs})"
            raise WsiScreenError(msg)
        ledger = Ledger(out / LEDGER_NAME)
        if options.resume:
            ledger.load()
        rows: dict[int, dict[str, Any]] = {}  # input index -> summary row ({} while to screen)
        todo: list[Planned] = []
        result = BatchResult(rows=[])
        metadata = run_metadata(options, cfg, bundle, model_sha, settings, locations, out, len(items))
        write_run_metadata(out / "run_metadata.json", metadata)
        interrupted = stopped = False
        try:
            ctx = PlanContext(model_sha, settings, cfg.to_dict(), kw.get("mpp"), options.rescreen)
            plan_all(items, ledger if options.resume else None, out, ctx, rows, todo, result)
            log.info(
                "batch: %d input(s), %d already done (skipped), %d to screen, engine %s",
                len(items),
                result.n_skipped,
                len(todo),
                options.engine,
            )
            index_of = {id(p): i for i, p in enumerate(items)}
            stopped = screen_planned(
                todo, out, options, engine_kwargs, ledger, rows, index_of, result, metadata
            )
        except KeyboardInterrupt:
            # Ctrl-C, while hashing or screening: still write the summary of what is done; the same
            # command resumes
            log.warning("interrupted: writing the summary of the inputs done so far")
            interrupted = stopped = True
        for i, item in enumerate(items):
            if not rows.get(i):
                reason = _NOT_RUN_FAIL_FAST
                if interrupted:
                    reason = _NOT_RUN_INTERRUPTED if i in rows else _NOT_CHECKED_INTERRUPTED
                rows[i] = not_run_row(item, reason)
                result.n_not_run += 1
        result.rows = [rows[i] for i in range(len(items))]
        write_summary(result.rows, out)
        write_index(out, result.rows)
        metadata.update(
            failures=[
                {k: r[k] for k in ("input", "status", "error_stage", "error_type", "error_message")}
                for r in result.rows
                if r["status"] not in (STATUS_OK, STATUS_SKIPPED)
            ],
            finished_at=_now(),
            status="interrupted" if interrupted else "stopped (--fail-fast)" if stopped else "finished",
            counts={
                "inputs": len(items),
                "screened": result.n_screened,
                "skipped_done": result.n_skipped,
                "failed": result.n_failed,
                "not_run": result.n_not_run,
                "not_inputs": result.n_not_inputs,
            },
        )
        write_run_metadata(out / "run_metadata.json", metadata)
        result.metadata = metadata
    if interrupted:
        raise KeyboardInterrupt
    return result


def _detector_fingerprint(cfg: Any, detector_weights: str | None) -> dict[str, Any] | None:
    """Hash of a learned detector's weights, so retrained weights at the same path re-process.

    Raises:
        WsiScreenError: the YOLO weights cannot be found.
    """
    if cfg.detector.name != "yolo":
        return None
    try:
        from wsi_screen.detectors.yolo import resolve_model_dir
    except ImportError:  # pragma: no cover - the adapter ships with the package
        return None
    weights, det_json = resolve_model_dir(detector_weights or cfg.detector.options.get("weights"))
    return {"weights_sha256": sha256_file(weights), "detector_json": det_json}


_CONFIG_KEYS = (
    "config_path",
    "detector",
    "detector_weights",
    "device",
    "batch_size",
    "config",
    "input_timeout",
)


def _absolute_paths(kw: dict[str, Any]) -> dict[str, Any]:
    """Make path-like options absolute so Ray workers with another working folder find them."""
    out = dict(kw)
    for key in ("model", "detector_weights", "config_path"):
        value = out.get(key)
        if value is not None and Path(str(value)).exists():
            out[key] = (
                Path(str(value)).absolute() if key == "config_path" else str(Path(str(value)).absolute())
            )
    return out


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
