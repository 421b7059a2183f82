"""``wsi-screen batch``: screen whole folders overnight, resumably, locally or on Ray.

Exit codes: 0 every input screened (now or in an earlier run); 1 one or more inputs failed or
were not run, Ctrl-C included (each named in OUT/summary.csv, and on stderr unless interrupted;
the others still done); 2 usage or configuration error (bad option, config file, model or
detector, no inputs, OUT in use).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from wsi_screen.cli.options import batch_size_option
from wsi_screen.cli.options import config_option
from wsi_screen.cli.options import device_option
from wsi_screen.cli.options import ensure_output_folder
from wsi_screen.cli.options import ids_manifest_option
from wsi_screen.cli.options import input_timeout_option
from wsi_screen.cli.options import model_option
from wsi_screen.cli.options import mpp_option
from wsi_screen.cli.options import output_option
from wsi_screen.cli.options import reader_option
from wsi_screen.errors import OutputError
from wsi_screen.io import open_nofollow
from wsi_screen.textsafe import EscapingFormatter
from wsi_screen.textsafe import printable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PROGRESS_LOGGER = "wsi_screen.batch.progress"


@click.command(short_help="Screen whole folders, resumably, locally or on Ray.")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@output_option(
    "Output folder: OUT/<name>/ per input, summary.csv, index.html and the batch log", deprecated_out=True
)
@click.option("--recursive", is_flag=True, help="Also screen files in sub-folders.")
@click.option(
    "--pattern",
    "patterns",
    multiple=True,
    default=("*",),
    show_default=True,
    metavar="GLOB",
    help="File-name glob selecting inputs, e.g. '*.svs'; repeatable: a file matching any of the "
    "patterns is an input (--pattern '*.svs' --pattern '*.ndpi'). Matching files of unsupported "
    "types are reported as failed, so narrow the pattern in folders holding other files.",
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip inputs already screened into OUT with the same input content, model and config.",
)
@click.option(
    "--fail-fast", is_flag=True, help="Stop at the first failed input (default: record it and go on)."
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process; ray: a pool of Ray workers, one input per task (one GPU per worker with CUDA).",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDR",
    help="Existing Ray cluster to use (e.g. 'auto' or 'ray://head:10001'); default: start a local Ray.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Ray workers (default: one per GPU with CUDA, else 2). Each loads the model once.",
)
@model_option
@click.option("--detector", default=None, help="Cell localiser: foreground (default) or yolo.")
@click.option("--detector-weights", default=None, help="YOLO weights file or shipped name (yolo-wbc).")
@mpp_option
@device_option
@batch_size_option
@input_timeout_option
@reader_option
@ids_manifest_option
@config_option
@click.option(
    "--rescreen",
    is_flag=True,
    help="Screen again inputs whose report holds a review or a signature (changed model or settings, "
    "--no-resume): each reviewed report is archived into OUT/<name>/superseded/<time>/ with an audit "
    "event first. Without it such an input stops the batch (exit 2) before anything is screened.",
)
def batch(
    folders: tuple[Path, ...],
    out: Path,
    recursive: bool,
    patterns: tuple[str, ...],
    resume: bool,
    fail_fast: bool,
    engine: str,
    ray_address: str | None,
    workers: int | None,
    model: str,
    detector: str | None,
    detector_weights: str | None,
    mpp: float | None,
    device: str | None,
    batch_size: int | None,
    input_timeout: float | None,
    reader: str,
    ids_manifest: Path | None,
    config_path: Path | None,
    rescreen: bool,
) -> None:
    """Screen every field and slide in FOLDER(s) into OUT/<name>/, with a summary of all of them.

    Writes OUT/summary.csv and summary.parquet (one row per input: status, error stage and
    message, cell counts, blast %, raised flags, timings), OUT/index.html, run_metadata.json,
    batch.log and ledger.jsonl. Run the same command again after an interruption: inputs
    already done are skipped and the interrupted one is redone. Reports support a
    morphologist's review; they are not a diagnosis.
    """
    from wsi_screen.batch import BatchOptions
    from wsi_screen.batch import run_batch
    from wsi_screen.errors import WsiScreenError

    if engine == "local" and ray_address:
        msg = "--ray-address needs --engine ray"
        raise click.UsageError(msg)
    ensure_output_folder(out)
    if engine == "local" and workers:
        click.echo("note: --workers applies to --engine ray; the local engine uses one worker", err=True)
    bars = sys.stderr.isatty()
    options = BatchOptions(
        recursive=recursive,
        patterns=patterns,
        resume=resume,
        fail_fast=fail_fast,
        engine=engine,
        ray_address=ray_address,
        workers=workers,
        progress_bars=bars,
        rescreen=rescreen,
    )
    screener_kwargs = {
        "config_path": config_path,
        "model": model,
        "detector": detector,
        "detector_weights": detector_weights,
        "device": device,
        "batch_size": batch_size,
        "input_timeout": input_timeout,
        "identifiers": {"manifest": str(ids_manifest.absolute()) if ids_manifest else None},
        "mpp": mpp,
        "reader": reader,
    }
    console_level = logging.getLogger().level  # --log-level, set by the command group
    with _log_file(out / "batch.log"), _redirect_logging(bars, console_level):
        try:
            result = run_batch(list(folders), out, options=options, screener_kwargs=screener_kwargs)
        except WsiScreenError as e:
            # a usage problem, not a crash: the message says it all, no traceback
            logging.getLogger("wsi_screen.batch").error("batch not run: %s", e)  # noqa: TRY400
            raise click.UsageError(str(e)) from e
    for row in result.rows:
        if row["status"] != "ok":
            stage = f"[{row['error_stage']}] " if row["error_stage"] else ""
            line = f"{row['status'].upper():8}{row['input']}: {stage}{row['error_message']}"
            click.echo(printable(line), err=True)
    click.echo(
        f"{len(result.rows)} input(s): {result.n_screened} screened, {result.n_skipped} done earlier (skipped), "
        f"{result.n_failed} failed, {result.n_not_run} not run"
        + (f", {result.n_not_inputs} not an input (skipped)" if result.n_not_inputs else "")
        + f" -> {out / 'summary.csv'}"
    )
    if not result.ok:
        raise SystemExit(1)


@contextlib.contextmanager
def _log_file(path: Path) -> Iterator[None]:
    """Append this batch's log records (INFO and up) to OUT/batch.log while the command runs.

    The console keeps the ``--log-level`` chosen; the file always gets one line per input.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # never appended through a link planted in OUT
        fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except (OutputError, OSError) as e:
        raise click.UsageError(str(e) if isinstance(e, OutputError) else f"{path}: {e.strerror}") from e
    handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
    handler.setLevel(logging.INFO)
    handler.setFormatter(EscapingFormatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    level = root.level
    console = [h for h in root.handlers if h.level == logging.NOTSET]
    if level > logging.INFO:
        for h in console:
            h.setLevel(level)
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        handler.stream.close()
        root.setLevel(level)
        for h in console:
            h.setLevel(logging.NOTSET)


class _NoProgressLines(logging.Filter):
    """Drop the per-input progress lines from the console while tqdm bars show progress."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != PROGRESS_LOGGER


@contextlib.contextmanager
def _redirect_logging(bars: bool, level: int) -> Iterator[None]:
    """Keep log lines from breaking the progress bars on a terminal; console at ``level``."""
    if not bars:
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        root = logging.getLogger()
        console = [h for h in root.handlers if not isinstance(h, logging.FileHandler)]
        quiet = _NoProgressLines()
        for h in console:
            h.addFilter(quiet)
            h.setLevel(level)
        try:
            yield
        finally:
            for h in console:
                h.removeFilter(quiet)
