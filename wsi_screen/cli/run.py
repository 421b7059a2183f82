"""``wsi-screen run``: screen fields and slides into OUT/<stem>/ reports.

Exit codes: 0 every input screened; 1 one or more inputs failed (each named on stderr, the
others still done); 2 usage or configuration error (bad option, config file, model or detector).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import click

from wsi_screen.cli.options import batch_size_option
from wsi_screen.cli.options import config_option
from wsi_screen.cli.options import device_option
from wsi_screen.cli.options import ensure_output_folder
from wsi_screen.cli.options import input_timeout_option
from wsi_screen.cli.options import model_option
from wsi_screen.cli.options import mpp_option
from wsi_screen.cli.options import output_option
from wsi_screen.textsafe import printable

if TYPE_CHECKING:
    from wsi_screen.types import Failure


@click.command(short_help="Screen fields and slides into per-input reports.")
@click.argument(
    "inputs", nargs=-1, required=True, metavar="INPUT...", type=click.Path(exists=True, path_type=Path)
)
@output_option("Output folder: OUT/<stem>/ per input and OUT/index.html", deprecated_out=True)
@model_option
@click.option("--detector", default=None, help="Cell localiser: foreground (default) or yolo.")
@click.option("--detector-weights", default=None, help="YOLO weights file or shipped name (yolo-wbc).")
@mpp_option
@device_option
@batch_size_option
@input_timeout_option
@config_option
def run(
    inputs: tuple[Path, ...],
    out: Path,
    model: str,
    detector: str | None,
    detector_weights: str | None,
    mpp: float | None,
    device: str | None,
    batch_size: int | None,
    input_timeout: float | None,
    config_path: Path | None,
) -> None:
    """Screen INPUT fields (PNG, JPEG, TIFF, BMP) and slides (TIFF, SVS, OME-TIFF).

    Writes OUT/<stem>/report.json, report.html, cells.parquet and cells.geojson for each input,
    and OUT/index.html. Reports support a morphologist's review; they are not a diagnosis.
    """
    from wsi_screen.batch.outdir import batch_lock
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.report_files import CELLS_GEOJSON
    from wsi_screen.report_files import CELLS_PARQUET
    from wsi_screen.report_files import REPORT_HTML
    from wsi_screen.report_files import REPORT_JSON
    from wsi_screen.reports.assets import ASSETS_JSON
    from wsi_screen.reports.index import write_index_html
    from wsi_screen.runner import build_screener
    from wsi_screen.runner import screen_to_folder

    try:
        screener, info = build_screener(
            config_path=config_path,
            model=model,
            detector=detector,
            detector_weights=detector_weights,
            device=device,
            batch_size=batch_size,
            mpp=mpp,
            input_timeout=input_timeout,
        )
    except WsiScreenError as e:
        raise click.UsageError(str(e)) from e
    ensure_output_folder(out)  # after the settings are known good: a usage error leaves no folder
    stack = contextlib.ExitStack()
    try:  # the batch lock: a run never rewrites a folder a batch (or another run) is writing
        stack.enter_context(batch_lock(out))
    except WsiScreenError as e:
        raise click.UsageError(str(e)) from e
    with stack:
        failed = 0
        done: list[tuple[Path, dict[str, Any]]] = []  # for OUT/index.html
        failures: list[Failure] = []
        written = ", ".join((REPORT_JSON, REPORT_HTML, CELLS_PARQUET, CELLS_GEOJSON, ASSETS_JSON))
        bar = _cells_bar()
        try:
            for result in screen_to_folder(
                screener, info, list(inputs), out, on_batch=None if bar is None else bar.update
            ):
                if bar is not None:
                    bar.clear()
                if result.failure is None:
                    done.append((result.out_dir, result.report or {}))
                    click.echo(
                        printable(
                            f"ok      {result.path.name}: {result.summary_line} -> {result.out_dir}/ ({written})"
                        )
                    )
                else:
                    failed += 1
                    f = result.failure
                    failures.append(f)
                    click.echo(printable(f"FAILED  {result.path.name} [{f.stage}] {f.message}"), err=True)
                if bar is not None:
                    bar.refresh()
        finally:
            if bar is not None:
                bar.close()
        try:
            click.echo(f"index   {write_index_html(out, done, failures=failures)}")
        except OSError as e:  # e.g. the disk filled up during the run
            click.echo(f"FAILED  {out / 'index.html'}: cannot write ({e.strerror or e})", err=True)
            failed = failed or 1
        if failed:
            click.echo(f"{failed} of {len(inputs)} input(s) failed", err=True)
            raise SystemExit(1)


def _cells_bar() -> Any:
    """A tqdm count of classified cells (with rate) on a terminal; None when stderr is not one."""
    if not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(desc="cells classified", unit="cell", dynamic_ncols=True, leave=False)
