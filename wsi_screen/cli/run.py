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
from wsi_screen.cli.options import reader_option
from wsi_screen.cli.options import sample_ids_options
from wsi_screen.textsafe import printable

if TYPE_CHECKING:
    from wsi_screen.types import Failure


class ReviewHeldExit(click.ClickException):
    """A folder to screen into holds a reviewed or signed report (exit 2, without the usage text)."""

    exit_code = 2


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
@reader_option
@config_option
@sample_ids_options
@click.option(
    "--backend",
    type=click.Choice(["torch", "onnx", "openvino"]),
    default=None,
    help="Where the classifier's network runs: torch (bf16 where the CPU has it, CUDA), onnx "
    "(ONNX Runtime on the CPU, fp32; pip install -e '.[onnx]') or openvino (OpenVINO on the CPU, "
    "bf16 where the CPU has it; pip install -e '.[openvino]'). Default: classify.backend of "
    "--config, else torch.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=-1, max=64),
    default=None,
    help="Threads that read and search inputs ahead of the model (-1: one per core beyond the "
    "first; 0: none; default: pipeline.workers of --config, else -1). Never changes a report.",
)
@click.option(
    "--case",
    "case_name",
    default=None,
    help="Screen all the files given as ONE case (the fields of one specimen) into OUT/NAME/. "
    "A folder given as INPUT is always a case of the fields in it.",
)
@click.option(
    "--rescreen",
    is_flag=True,
    help="Screen again into a folder whose report holds a review or a signature: the reviewed report "
    "is archived into OUT/<stem>/superseded/<time>/ (with an audit event) first. Without it such a "
    "folder stops the run (exit 2) before anything is screened.",
)
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
    reader: str,
    config_path: Path | None,
    sample_id: str | None,
    patient_id: str | None,
    ids_manifest: Path | None,
    workers: int | None,
    backend: str | None,
    case_name: str | None,
    rescreen: bool,
) -> None:
    """Screen INPUT fields (PNG, JPEG, TIFF, BMP) and slides (TIFF, SVS, OME-TIFF, DICOM, OpenSlide's formats).

    A folder of DICOM instances (one series) is one slide; any other folder is a case of fields.

    Writes OUT/<stem>/report.json, report.html, cells.parquet and cells.geojson for each input,
    and OUT/index.html. Reports support a morphologist's review; they are not a diagnosis.
    """
    from wsi_screen.batch.outdir import batch_lock
    from wsi_screen.case_screen import plan_run_inputs
    from wsi_screen.case_screen import screen_case
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.report_files import CELLS_GEOJSON
    from wsi_screen.report_files import CELLS_PARQUET
    from wsi_screen.report_files import REPORT_HTML
    from wsi_screen.report_files import REPORT_JSON
    from wsi_screen.reports.assets import ASSETS_JSON
    from wsi_screen.reports.excluded_cells import input_reasons
    from wsi_screen.reports.index import write_index_html
    from wsi_screen.runner import InputOutcome
    from wsi_screen.runner import build_screener
    from wsi_screen.runner import screen_to_folder

    try:
        files, file_stems, cases = plan_run_inputs(list(inputs), case_name)
    except WsiScreenError as e:
        raise click.UsageError(str(e)) from e
    if (sample_id or patient_id) and len(files) + len(cases) > 1:
        msg = (
            "--sample-id/--patient-id name one input or one case; give several inputs theirs with --ids FILE"
        )
        raise click.UsageError(msg)
    if not rescreen:  # no screening erases a review
        from wsi_screen.outnames import clean_stem
        from wsi_screen.reports.rescreen import refuse_held_reviews

        try:
            refuse_held_reviews([out / s for s in file_stems] + [out / clean_stem(n) for _, n in cases])
        except WsiScreenError as e:
            raise ReviewHeldExit(str(e)) from e
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
            workers=workers,
            backend=backend,
            identifiers={"sample_id": sample_id, "patient_id": patient_id, "manifest": ids_manifest},
            reader=reader,
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
                screener, info, files, out, stems=file_stems, on_batch=None if bar is None else bar.update
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
                    for w in input_reasons(result.report or {}):
                        click.echo(printable(f"warning {result.path.name}: {w}"), err=True)
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
        for case, name in cases:
            outcome = screen_case(screener, info, case, out, out_name=name)
            for f in outcome.failures:
                failed += 1
                failures.append(f)
                click.echo(
                    printable(f"FAILED  {Path(f.source).name} [{f.stage}] {f.message} (case {case.name})"),
                    err=True,
                )
            if outcome.report is not None:
                done.append((outcome.out_dir, outcome.report))
                line = InputOutcome(Path(case.name), outcome.out_dir, None, outcome.report, 0.0).summary_line
                n = outcome.report["case"]
                click.echo(
                    printable(
                        f"ok      case {case.name} ({n['n_fields_screened']}/{n['n_fields']} fields): {line} -> {outcome.out_dir}/"
                    )
                )
            for s in case.skipped:
                click.echo(printable(f"skipped {s.path} ({s.reason})"))
        try:
            click.echo(f"index   {write_index_html(out, done, failures=failures)}")
        except OSError as e:  # e.g. the disk filled up during the run
            click.echo(f"FAILED  {out / 'index.html'}: cannot write ({e.strerror or e})", err=True)
            failed = failed or 1
        if failed:
            n_inputs = len(files) + sum(len(c.fields) for c, _ in cases)
            click.echo(f"{failed} of {n_inputs} input(s) failed", err=True)
            raise SystemExit(1)


def _cells_bar() -> Any:
    """A tqdm count of classified cells (with rate) on a terminal; None when stderr is not one."""
    if not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(desc="cells classified", unit="cell", dynamic_ncols=True, leave=False)
