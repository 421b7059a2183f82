"""Screen a batch's planned inputs on an engine, and record each outcome in the ledger and summary.

The report writer puts each input's run key into its report.json (``batch.run_key``), so the file
is written once, last; only then is the input's ledger line appended, which makes it count as done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wsi_screen.batch.options import BatchOptions
from wsi_screen.batch.options import BatchResult
from wsi_screen.batch.plan import Planned
from wsi_screen.batch.progress import Progress
from wsi_screen.batch.summary import STATUS_FAILED
from wsi_screen.batch.summary import STATUS_OK
from wsi_screen.batch.summary import failed_row
from wsi_screen.batch.summary import ok_row
from wsi_screen.batch.summary import report_run_key
from wsi_screen.batch.summary import stamp_run_key
from wsi_screen.errors import WsiScreenError
from wsi_screen.ledger import Ledger
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.runner import InputOutcome
from wsi_screen.types import Failure

log = logging.getLogger(__name__)


def screen_planned(
    todo: list[Planned],
    out: Path,
    options: BatchOptions,
    engine_kwargs: dict[str, Any],
    ledger: Ledger,
    rows: dict[int, dict[str, Any]],
    index_of: dict[int, int],
    result: BatchResult,
    metadata: dict[str, Any],
) -> bool:
    """Run the engine over ``todo``; fill ``rows``; return whether ``--fail-fast`` stopped it.

    Args:
        todo: the planned inputs, in order.
        out: the batch output folder.
        options: engine, workers, fail-fast and progress options.
        engine_kwargs: what the engine's workers build their screener from.
        ledger: each outcome is appended to it.
        rows: input index -> summary row, filled as inputs finish.
        index_of: ``id(planned.item)`` -> input index.
        result: its screened and failed counts are updated.
        metadata: run_metadata.json content; its ``engine`` block is filled.
    """
    progress = Progress(len(todo), bars=options.progress_bars)
    state = {"stop": False}
    engine_info: dict[str, Any] = {}
    metadata["engine"] = {"name": options.engine, **engine_info}
    outcomes = _engine(todo, out, options, engine_kwargs, progress, lambda: state["stop"], engine_info)
    try:
        for j, outcome in outcomes:
            planned = todo[j]
            row = record(planned, outcome, ledger)
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


def _engine(
    todo: list[Planned],
    out: Path,
    options: BatchOptions,
    engine_kwargs: dict[str, Any],
    progress: Progress,
    stop: Callable[[], bool],
    engine_info: dict[str, Any],
) -> Iterator[tuple[int, InputOutcome]]:
    """The chosen engine's outcomes, ``(index into todo, outcome)``, each report stamped with its run key."""
    items = [p.item for p in todo]
    keys = [p.key for p in todo]
    if options.engine == "ray":
        from wsi_screen.batch.ray_engine import screen_ray

        return screen_ray(
            items,
            out,
            screener_kwargs=engine_kwargs,
            on_cells=progress.add_cells,
            stop=stop,
            engine_info=engine_info,
            address=options.ray_address,
            workers=options.workers,
            run_keys=keys,
        )
    from wsi_screen.batch.local import screen_local

    return screen_local(
        items,
        out,
        screener_kwargs=engine_kwargs,
        on_cells=progress.add_cells,
        stop=stop,
        engine_info=engine_info,
        run_keys=keys,
    )


def record(planned: Planned, outcome: InputOutcome, ledger: Ledger) -> dict[str, Any]:
    """Turn an engine outcome into a summary row and append it to the ledger.

    The screened input's report.json already carries the run key (the writer put it there); only an
    engine that did not pass it on makes the batch stamp the file here, before the ledger line that
    makes it count as done.
    """
    item = planned.item
    report, failure = outcome.report, outcome.failure
    if failure is None and report is not None and report_run_key(report) != planned.key:
        path = outcome.out_dir / REPORT_JSON
        try:
            report = stamp_run_key(report, path, planned.key)
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
        key=planned.key,
        input_sha256=planned.sha256,
        status=status,
    )
    return row


def _detail(row: dict[str, Any], outcome: InputOutcome) -> str:
    if row["status"] != STATUS_OK:
        return f"[{row['error_stage']}] {row['error_type']}"  # the message is logged once, by record
    return f"{outcome.summary_line} ({outcome.seconds:.1f} s)"
