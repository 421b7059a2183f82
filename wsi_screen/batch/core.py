"""Run a batch: discover, skip what the ledger says is done, screen the rest, summarise.

Outputs in OUT: <stem>/ per input (as ``run`` writes them), ledger.jsonl, summary.csv,
summary.parquet, index.html and run_metadata.json. Every file is written atomically; a redo
removes the input's old report.json before writing anything else, and the batch then stamps the
run key into the new report.json (``batch.run_key``) before appending the input's ledger line.
An input is done only when its ledger line and its report.json carry the same run key, so a
batch killed at any moment resumes with the interrupted input redone from scratch, and a folder
rewritten under other settings is never taken for the results of the settings it replaced.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from wsi_screen.batch.discover import BatchInput
from wsi_screen.batch.discover import discover_inputs
from wsi_screen.batch.discover import recorded_stems
from wsi_screen.batch.finished import Expected
from wsi_screen.batch.finished import is_finished
from wsi_screen.batch.finished import keep_reviewed_report
from wsi_screen.batch.outdir import batch_lock
from wsi_screen.batch.progress import Progress
from wsi_screen.batch.summary import STATUS_FAILED
from wsi_screen.batch.summary import STATUS_OK
from wsi_screen.batch.summary import failed_row
from wsi_screen.batch.summary import not_run_row
from wsi_screen.batch.summary import ok_row
from wsi_screen.batch.summary import read_report
from wsi_screen.batch.summary import report_run_key
from wsi_screen.batch.summary import run_metadata
from wsi_screen.batch.summary import stamp_run_key
from wsi_screen.batch.summary import write_index
from wsi_screen.batch.summary import write_run_metadata
from wsi_screen.batch.summary import write_summary
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import clean_temp_files
from wsi_screen.io import sha256_file
from wsi_screen.ledger import LEDGER_NAME
from wsi_screen.ledger import Ledger
from wsi_screen.ledger import run_key
from wsi_screen.ledger import settings_hash
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.runner import InputOutcome
from wsi_screen.types import Failure

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
_NOT_RUN_FAIL_FAST = "not screened: --fail-fast stopped the batch at an earlier failure"
_NOT_RUN_INTERRUPTED = "not screened: the batch was interrupted; run the same command again to resume"
_NOT_CHECKED_INTERRUPTED = (
    "not checked: the batch was interrupted while hashing the inputs; run the same command again to resume"
)


@dataclass(frozen=True)
class BatchOptions:
    """How to run a batch (the ``wsi-screen batch`` options)."""

    recursive: bool = False
    patterns: tuple[str, ...] = ("*",)  # file-name globs; a file matching any one is an input
    resume: bool = True
    fail_fast: bool = False
    engine: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    progress_bars: bool = False


@dataclass
class BatchResult:
    """What a batch did: summary rows in input order and counts."""

    rows: list[dict[str, Any]]
    n_screened: int = 0
    n_skipped: int = 0
    n_failed: int = 0
    n_not_run: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every input was screened (now or in an earlier run)."""
        return self.n_failed == 0 and self.n_not_run == 0


@dataclass
class _Planned:
    item: BatchInput
    sha256: str | None = None
    key: str | None = None


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
    )
    model_sha = bundle.sha256()
    # workers rebuild the screener from the resolved config, so all of them run the same settings
    engine_kwargs = {
        "config": cfg,
        "model": kw.get("model", "default"),
        "detector_weights": kw.get("detector_weights"),
        "mpp": kw.get("mpp"),
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
        todo: list[_Planned] = []
        result = BatchResult(rows=[])
        metadata = run_metadata(options, cfg, bundle, model_sha, settings, locations, out, len(items))
        write_run_metadata(out / "run_metadata.json", metadata)
        interrupted = stopped = False
        try:
            ctx = _PlanContext(model_sha, settings, cfg.to_dict(), kw.get("mpp"))
            _plan_all(items, ledger if options.resume else None, out, ctx, rows, todo, result)
            log.info(
                "batch: %d input(s), %d already done (skipped), %d to screen, engine %s",
                len(items),
                result.n_skipped,
                len(todo),
                options.engine,
            )
            index_of = {id(p): i for i, p in enumerate(items)}
            stopped = _screen(todo, out, options, engine_kwargs, ledger, rows, index_of, result, metadata)
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
                if r["status"] != STATUS_OK
            ],
            finished_at=_now(),
            status="interrupted" if interrupted else "stopped (--fail-fast)" if stopped else "finished",
            counts={
                "inputs": len(items),
                "screened": result.n_screened,
                "skipped_done": result.n_skipped,
                "failed": result.n_failed,
                "not_run": result.n_not_run,
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


_CONFIG_KEYS = ("config_path", "detector", "detector_weights", "device", "batch_size", "config")


def _plan_all(
    items: list[BatchInput],
    ledger: Ledger | None,
    out: Path,
    ctx: _PlanContext,
    rows: dict[int, dict[str, Any]],
    todo: list[_Planned],
    result: BatchResult,
) -> None:
    """Plan every input in order, filling ``rows`` and ``todo`` as it goes (Ctrl-C keeps what is planned)."""
    log.info("checking %d input(s) against the ledger (hashing their contents)", len(items))
    for i, item in enumerate(items):
        planned = _plan(item, ledger, out, ctx)
        if isinstance(planned, dict):
            rows[i] = planned
            if planned["status"] == STATUS_OK:
                result.n_skipped += 1
            else:
                result.n_failed += 1
        else:
            todo.append(planned)
            rows[i] = {}  # filled when screened


def _plan(item: BatchInput, ledger: Ledger | None, out: Path, ctx: _PlanContext) -> _Planned | dict[str, Any]:
    """Hash an input and decide: a summary row now (done earlier, or unreadable) or screen it."""
    t = time.perf_counter()
    try:
        sha = sha256_file(item.path)
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
    if report is not None and report.get("review"):
        keep_reviewed_report(report, path.parent, item.name)
    return _Planned(item, sha, key)


@dataclass(frozen=True)
class _PlanContext:
    model_sha: str
    settings: str
    config: dict[str, Any]
    mpp: float | None


def _screen(
    todo: list[_Planned],
    out: Path,
    options: BatchOptions,
    engine_kwargs: dict[str, Any],
    ledger: Ledger,
    rows: dict[int, dict[str, Any]],
    index_of: dict[int, int],
    result: BatchResult,
    metadata: dict[str, Any],
) -> bool:
    """Run the engine over ``todo``; fill ``rows``; return whether ``--fail-fast`` stopped it."""
    progress = Progress(len(todo), bars=options.progress_bars)
    state = {"stop": False}
    engine_info: dict[str, Any] = {}
    metadata["engine"] = {"name": options.engine, **engine_info}
    items = [p.item for p in todo]
    if options.engine == "ray":
        from wsi_screen.batch.ray_engine import screen_ray

        outcomes = screen_ray(
            items,
            out,
            screener_kwargs=engine_kwargs,
            on_cells=progress.add_cells,
            stop=lambda: state["stop"],
            engine_info=engine_info,
            address=options.ray_address,
            workers=options.workers,
        )
    else:
        from wsi_screen.batch.local import screen_local

        outcomes = screen_local(
            items,
            out,
            screener_kwargs=engine_kwargs,
            on_cells=progress.add_cells,
            stop=lambda: state["stop"],
            engine_info=engine_info,
        )
    try:
        for j, outcome in outcomes:
            planned = todo[j]
            row = _record(planned, outcome, ledger)
            rows[index_of[id(planned.item)]] = row
            if row["status"] == STATUS_OK:
                result.n_screened += 1
            else:
                result.n_failed += 1
                if options.fail_fast:
                    state["stop"] = True
            progress.input_done(planned.item.name, row["status"], _detail(row, outcome))
    finally:
        progress.close()
        metadata["engine"] = {"name": options.engine, **engine_info}
    return state["stop"]


def _record(planned: _Planned, outcome: InputOutcome, ledger: Ledger) -> dict[str, Any]:
    """Turn an engine outcome into a summary row and append it to the ledger.

    A screened input's report.json is first stamped with the run key: only then does the ledger
    line make it count as done.
    """
    item = planned.item
    report, failure = outcome.report, outcome.failure
    if failure is None and report is not None:
        path = outcome.out_dir / REPORT_JSON
        try:
            report = stamp_run_key(report, path, planned.key or "")
        except (OSError, WsiScreenError) as e:
            reason = e.strerror if isinstance(e, OSError) else str(e)
            failure = Failure(str(item.path), "report", type(e).__name__, f"{path}: {reason}")
    if failure is None and report is not None:
        row = ok_row(item, report)
        status = STATUS_OK
    else:
        failure = failure or Failure(str(item.path), "report", "WsiScreenError", "no report written")
        row = failed_row(item, failure, outcome.seconds, planned.sha256)
        status = STATUS_FAILED
        log.warning("%s failed [%s] %s", item.name, failure.stage, failure.message)
    ledger.append(
        input_name=item.name,
        stem=item.stem,
        key=planned.key or "",
        input_sha256=planned.sha256 or "",
        status=status,
    )
    return row


def _detail(row: dict[str, Any], outcome: InputOutcome) -> str:
    if row["status"] != STATUS_OK:
        return f"[{row['error_stage']}] {row['error_type']}"  # the message is logged once, by _record
    return f"{outcome.summary_line} ({outcome.seconds:.1f} s)"


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
