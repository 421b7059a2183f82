"""Bounded work per input: size caps checked before decoding, and a per-input time limit.

A file may declare anything: a 1 MB TIFF can claim 200,000 x 200,000 px, 1 px tiles that make
reading it take hours, or one 20,000 x 20,000 px strip that is decoded whole for every region read;
a 700-byte JPEG can claim 12,000 x 12,000 px. :class:`LimitsConfig` (the ``[limits]`` section of
the configuration, echoed into every report) refuses such geometry when the file is opened, before
any pixel is decoded, and :func:`wsi_screen.deadline.within` ends an input that runs past
``input_timeout_s`` with a failure at stage ``timeout`` (the other inputs go on).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi_screen.deadline import InputTimeoutError
from wsi_screen.errors import ConfigError
from wsi_screen.errors import InputError

__all__ = [
    "InputTimeoutError",
    "InputTooLargeError",
    "LimitsConfig",
    "check_field_size",
    "check_slide_geometry",
]

DEFAULT_INPUT_TIMEOUT_S = 3600.0
"""Default ``limits.input_timeout_s``: an hour to read and search one input (a 100,000 px square
scan on a CPU takes minutes), so that no input runs without end."""


class InputTooLargeError(InputError):
    """An input's declared geometry exceeds the configured limits (refused before decoding)."""


@dataclass(frozen=True)
class LimitsConfig:
    """Caps on what one input may cost (``[limits]``).

    Attributes:
        max_slide_pixels: most level-0 pixels of a slide (default 2e10: a 141,000 px square;
            a 100,000 x 100,000 scan passes). At most 1e12.
        min_tile_px: smallest tile side of a tiled TIFF level (degenerate tilings make every
            read touch millions of tiles).
        max_tiles: most tiles (or strips) of one level.
        max_decode_samples: most samples (pixels x channels) one strip or tile of a slide
            decodes to. A region read decodes every strip or tile it touches whole, so one
            20,000 x 20,000 px strip would be decoded for every 512 px tile (default 2**24: a
            2048 px square RGBA tile, or 55 rows of a 100,000 px wide RGB strip).
        max_field_pixels: most pixels a field (PNG, JPEG, BMP) may declare in its header; it is
            decoded whole (default 64e6: an 8,000 px square). Pillow's own limit (89.5e6 px)
            still applies above it.
        max_unreadable_tile_fraction: share of a slide's tiles that may be corrupt (skipped and
            counted in ``qc.unreadable_tiles``) before the input fails.
        input_timeout_s: seconds one input may take from opening to its last cell found
            (default 3600; 0: no limit). Measured from the start of reading, so it covers
            decoding and detection; enforced on any thread (:mod:`wsi_screen.deadline`).
    """

    max_slide_pixels: float = 2e10
    min_tile_px: int = 64
    max_tiles: int = 2_000_000
    max_decode_samples: int = 2**24
    max_field_pixels: float = 64e6
    max_unreadable_tile_fraction: float = 0.05
    input_timeout_s: float = DEFAULT_INPUT_TIMEOUT_S

    def __post_init__(self) -> None:
        _check_range("max_slide_pixels", self.max_slide_pixels, 1e6, 1e12)
        _check_range("min_tile_px", self.min_tile_px, 1, 4096)
        _check_range("max_tiles", self.max_tiles, 1, 1e9)
        _check_range("max_decode_samples", self.max_decode_samples, 4096, 2**31)
        _check_range("max_field_pixels", self.max_field_pixels, 1e4, 1e9)
        _check_range("max_unreadable_tile_fraction", self.max_unreadable_tile_fraction, 0, 1)
        _check_range("input_timeout_s", self.input_timeout_s, 0, 7 * 86400, note=" (0: none)")


def _check_range(key: str, value: float, low: float, high: float, *, note: str = "") -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high`` (NaN and infinities fail too)."""
    if not (math.isfinite(value) and low <= value <= high):
        msg = f"limits.{key} must be {low:g}-{high:g}{note}, got {value}"
        raise ConfigError(msg)


def check_slide_geometry(
    path: Path,
    properties: Any,
    dims: tuple[int, int],
    limits: LimitsConfig,
    *,
    chunks: Sequence[tuple[tuple[int, ...], tuple[int, ...]]] = (),
) -> None:
    """Refuse a slide whose declared size or layout exceeds ``limits`` (from the TIFF tags only).

    Args:
        path: the file (named in the error).
        properties: tiffslide's ``properties`` mapping (``tiffslide.level[i].tile-width`` ...).
        dims: level-0 (width, height).
        limits: the caps.
        chunks: per level read, its array shape and the shape of its decode unit (a tile, or a
            strip of rows across the whole width: tifffile's ``page.shape`` and ``page.chunks``).

    Raises:
        InputTooLargeError: too many pixels, tiles smaller than ``min_tile_px``, too many tiles
            or strips, or a tile or strip that decodes to more than ``max_decode_samples``.
    """
    w, h = dims
    if w * h > limits.max_slide_pixels:
        msg = (
            f"{path}: declares {w} x {h} px ({w * h:.3g} px), more than limits.max_slide_pixels "
            f"({limits.max_slide_pixels:.3g}); refused before decoding"
        )
        raise InputTooLargeError(msg)
    level = 0
    while f"tiffslide.level[{level}].width" in properties:
        tw = properties.get(f"tiffslide.level[{level}].tile-width")
        th = properties.get(f"tiffslide.level[{level}].tile-height")
        if tw and th:
            lw = int(properties[f"tiffslide.level[{level}].width"])
            lh = int(properties[f"tiffslide.level[{level}].height"])
            tw, th = int(tw), int(th)
            if min(tw, th) < min(limits.min_tile_px, lw, lh):
                msg = (
                    f"{path}: level {level} has {tw} x {th} px tiles, smaller than "
                    f"limits.min_tile_px ({limits.min_tile_px}); refused before decoding"
                )
                raise InputTooLargeError(msg)
            n = math.ceil(lw / max(tw, 1)) * math.ceil(lh / max(th, 1))
            if n > limits.max_tiles:
                msg = f"{path}: level {level} has {n} tiles, more than limits.max_tiles ({limits.max_tiles})"
                raise InputTooLargeError(msg)
        level += 1
    for level, (shape, chunk) in enumerate(chunks):
        _check_decode_unit(path, level, shape, chunk, limits)


def _check_decode_unit(
    path: Path, level: int, shape: tuple[int, ...], chunk: tuple[int, ...], limits: LimitsConfig
) -> None:
    """Refuse a level whose strip or tile is too large to decode per read, or that has too many."""
    unit = math.prod(max(int(c), 1) for c in chunk)
    if unit > limits.max_decode_samples:
        msg = (
            f"{path}: level {level} is stored in strips or tiles of {' x '.join(map(str, chunk))} samples "
            f"({unit:.3g}), more than limits.max_decode_samples ({limits.max_decode_samples:.3g}): "
            "every region read would decode one whole; refused before decoding (convert it to a "
            "tiled pyramid)"
        )
        raise InputTooLargeError(msg)
    n = math.prod(math.ceil(int(s) / max(int(c), 1)) for s, c in zip(shape, chunk, strict=False))
    if n > limits.max_tiles:
        msg = (
            f"{path}: level {level} has {n} tiles or strips, more than limits.max_tiles ({limits.max_tiles})"
        )
        raise InputTooLargeError(msg)


def check_field_size(path: Path, size: tuple[int, int], limits: LimitsConfig) -> None:
    """Refuse a field whose header declares more than ``max_field_pixels`` (before decoding it).

    Raises:
        InputTooLargeError: naming the declared size and the cap.
    """
    w, h = size
    if w * h > limits.max_field_pixels:
        msg = (
            f"{path}: declares {w} x {h} px ({w * h:.3g} px), more than limits.max_field_pixels "
            f"({limits.max_field_pixels:.3g}); refused before decoding"
        )
        raise InputTooLargeError(msg)
