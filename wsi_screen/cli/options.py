"""Reusable click options shared by commands."""

from __future__ import annotations

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


def mpp_option(f: F) -> F:
    """``--mpp UM_PER_PX``."""
    return click.option(
        "--mpp",
        type=click.FloatRange(min=0.001, max=100.0),
        default=None,
        help="Microns per pixel for inputs whose file records none.",
    )(f)
