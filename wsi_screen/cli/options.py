"""Reusable click options shared by commands."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

F = Callable[..., Any]


def device_option(f: F) -> F:
    """``--device auto|cpu|cuda[:N]``."""
    return click.option(
        "--device",
        default=None,
        metavar="auto|cpu|cuda[:N]",
        help="Compute device (default from config: auto = CUDA when available).",
    )(f)


def batch_size_option(f: F) -> F:
    """``--batch-size N``."""
    return click.option(
        "--batch-size", type=click.IntRange(min=1), default=None, help="Patches per inference batch."
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
