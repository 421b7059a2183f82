"""Reusable click options shared by commands."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from wsi_screen.limits import DEFAULT_INPUT_TIMEOUT_S

F = Callable[..., Any]


DEVICE_METAVAR = "auto|cpu|cuda[:N]"
DEVICE_HELP = "Compute device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N."
_DEPRECATED_OUT = "wsi_screen.deprecated_out"


class CommandError(click.ClickException):
    """A usage or configuration problem found while running a command: exit code 2, no usage text.

    For what click cannot check itself (a model, scheme, data set or detector that does not load);
    a command that cannot run at all is a usage error, as documented (``1`` means some inputs failed).
    """

    exit_code = 2


def _device_from_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``None`` when ``--device`` is not given, so that a ``--config`` file's device applies."""
    if param.name and ctx.get_parameter_source(param.name) is click.core.ParameterSource.DEFAULT:
        return None
    return value


def device_option(f: F) -> F:
    """``--device auto|cpu|cuda[:N]`` of the screening commands (``None``: the config's device)."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        metavar=DEVICE_METAVAR,
        callback=_device_from_config,
        help=f"{DEVICE_HELP} Not given: the --config file's classify.device when it sets one.",
    )(f)


def torch_device_option(f: F) -> F:
    """``--device auto|cpu|cuda[:N]`` of the model-building commands (no config file)."""
    return click.option(
        "--device", default="auto", show_default=True, metavar=DEVICE_METAVAR, help=DEVICE_HELP
    )(f)


def _output_given(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """The ``-o/--output`` value, else the deprecated ``--out`` one; neither is a usage error."""
    if value is None:
        value = ctx.meta.get(_DEPRECATED_OUT)
    if value is None:
        raise click.MissingParameter(ctx=ctx, param=param)
    return value


def _deprecated_out(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """Accept the old ``--out`` spelling of ``-o/--output``, with a warning on stderr."""
    if value is not None:
        click.echo("warning: --out is deprecated and will be removed; use -o/--output", err=True)
        ctx.meta[_DEPRECATED_OUT] = value


def output_option(help_text: str, *, dest: str = "out", deprecated_out: bool = False) -> Callable[[F], F]:
    """``-o/--output OUT`` (required), the output folder of every command.

    Args:
        help_text: what the folder receives.
        dest: the command function's parameter name.
        deprecated_out: also accept the old ``--out`` spelling (hidden, warns on stderr).
    """
    folder = click.Path(file_okay=False, path_type=Path)
    metavar = "OUT"

    def decorate(f: F) -> F:
        f = click.option(
            "-o",
            "--output",
            dest,
            type=folder,
            default=None,
            metavar=metavar,
            callback=_output_given,
            help=f"{help_text} (required)",
        )(f)
        if deprecated_out:
            f = click.option(
                "--out",
                "deprecated_out",
                type=folder,
                default=None,
                hidden=True,
                expose_value=False,
                callback=_deprecated_out,
                help="Deprecated spelling of -o/--output.",
            )(f)
        return f

    return decorate


def batch_size_option(f: F) -> F:
    """``--batch-size N``."""
    return click.option(
        "--batch-size", type=click.IntRange(min=1), default=None, help="Patches per inference batch."
    )(f)


def input_timeout_option(f: F) -> F:
    """``--input-timeout SECONDS``."""
    return click.option(
        "--input-timeout",
        "input_timeout",
        type=click.FloatRange(min=0),
        default=None,
        help="Seconds one input may take to read and search (0: no limit; default: "
        f"limits.input_timeout_s of --config, else {DEFAULT_INPUT_TIMEOUT_S:g}). An input past it fails at stage "
        "'timeout'; the others go on.",
    )(f)


def reader_option(f: F) -> F:
    """``--reader auto|tiffslide|openslide|dicom``: which library reads the slides."""
    from wsi_screen.sources.formats import READERS

    return click.option(
        "--reader",
        type=click.Choice(list(READERS)),
        default="auto",
        show_default=True,
        help="Library that reads the inputs: auto picks by content (DICOM: wsidicom; TIFF, SVS, "
        "OME-TIFF: tiffslide; MRXS, VMS, BIF and what tiffslide cannot open: OpenSlide; PNG, JPEG, "
        "BMP: Pillow); tiffslide, openslide (pip install -e '.[openslide]') or dicom (pip install "
        "-e '.[dicom]') forces one. report.json names it (input.reader).",
    )(f)


def config_option(f: F) -> F:
    """``--config FILE`` (TOML)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="TOML configuration (see examples/screen.toml); CLI options override it.",
    )(f)


def model_option(f: F) -> F:
    """``--model DIR|NAME``."""
    return click.option(
        "--model",
        default="default",
        show_default=True,
        help="Classifier bundle folder, or the name of a shipped model (see `wsi-screen models`).",
    )(f)


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):  # FloatRange lets NaN through
        msg = f"{value} is not a finite number"
        raise click.BadParameter(msg, ctx=ctx, param=param)
    return value


def mpp_option(f: F) -> F:
    """``--mpp UM_PER_PX``."""
    return click.option(
        "--mpp",
        type=click.FloatRange(min=0.001, max=100.0),
        default=None,
        callback=_finite,
        help="Microns per pixel for inputs whose file records none.",
    )(f)


def ids_manifest_option(f: F) -> F:
    """``--ids FILE``: a CSV of sample and patient identifiers per input."""
    return click.option(
        "--ids",
        "ids_manifest",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="CSV of identifiers (columns input and/or sha256, sample_id, patient_id); inputs' "
        "<name>.ids.json sidecars are read without it. Never guessed from file names.",
    )(f)


def sample_ids_options(f: F) -> F:
    """``--sample-id``, ``--patient-id`` (one input or one case) and ``--ids FILE``."""
    f = ids_manifest_option(f)
    f = click.option("--patient-id", default=None, help="Patient identifier of the ONE input or case.")(f)
    return click.option("--sample-id", default=None, help="Sample identifier of the ONE input or case.")(f)


def ensure_output_folder(out: Path) -> None:
    """Create ``out`` and check a file can be written in it, before any input is screened.

    Raises:
        click.UsageError: ``out`` is a file, cannot be created or is not writable (exit code 2).
    """
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-", suffix=".tmp"):
            pass
    except FileExistsError as e:
        msg = f"{out}: output folder exists as a file"
        raise click.UsageError(msg) from e
    except OSError as e:
        msg = f"{out}: output folder cannot be written ({e.strerror or e})"
        raise click.UsageError(msg) from e
