"""Bounded work per input: size caps checked before decoding, and a per-input time limit.

A file may declare anything: a 1 MB TIFF can claim 200,000 x 200,000 px, or 1 px tiles that make
reading it take hours. :class:`LimitsConfig` (the ``[limits]`` section of the configuration,
echoed into every report) refuses such geometry when the file is opened, before any pixel is
decoded, and :func:`deadline` ends an input that runs past ``input_timeout_s`` with a failure at
stage ``timeout`` (the other inputs go on).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi_screen.errors import ConfigError
from wsi_screen.errors import InputError

log = logging.getLogger(__name__)


class InputTooLargeError(InputError):
    """An input's declared geometry exceeds the configured limits (refused before decoding)."""


class InputTimeoutError(BaseException):
    """An input ran past the per-input time limit.

    A ``BaseException`` (like ``KeyboardInterrupt``), so the broad ``except Exception`` of
    readers and libraries cannot turn it into another error or swallow it; only
    :meth:`wsi_screen.pipeline.Screener` catches it, for the input it concerns.
    """

    stage = "timeout"


@dataclass(frozen=True)
class LimitsConfig:
    """Caps on what one input may cost (``[limits]``).

    Attributes:
        max_slide_pixels: most level-0 pixels of a slide (default 2e10: a 141,000 px square;
            a 100,000 x 100,000 scan passes).
        min_tile_px: smallest tile side of a tiled TIFF level (degenerate tilings make every
            read touch millions of tiles).
        max_tiles: most tiles of one level.
        max_unreadable_tile_fraction: share of a slide's tiles that may be corrupt (skipped and
            counted in ``qc.unreadable_tiles``) before the input fails.
        input_timeout_s: seconds one input may take from opening to its last cell found
            (0: no limit). Measured from the start of reading, so it covers decoding and detection.
    """

    max_slide_pixels: float = 2e10
    min_tile_px: int = 64
    max_tiles: int = 2_000_000
    max_unreadable_tile_fraction: float = 0.05
    input_timeout_s: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_slide_pixels) and self.max_slide_pixels >= 1e6):
            msg = f"limits.max_slide_pixels must be a finite number >= 1e6, got {self.max_slide_pixels}"
            raise ConfigError(msg)
        if not 1 <= self.min_tile_px <= 4096:
            msg = f"limits.min_tile_px must be 1-4096, got {self.min_tile_px}"
            raise ConfigError(msg)
        if self.max_tiles < 1:
            msg = f"limits.max_tiles must be >= 1, got {self.max_tiles}"
            raise ConfigError(msg)
        if not 0 <= self.max_unreadable_tile_fraction <= 1:
            msg = f"limits.max_unreadable_tile_fraction must be 0-1, got {self.max_unreadable_tile_fraction}"
            raise ConfigError(msg)
        if not (math.isfinite(self.input_timeout_s) and self.input_timeout_s >= 0):
            msg = f"limits.input_timeout_s must be >= 0 (0: none), got {self.input_timeout_s}"
            raise ConfigError(msg)


def check_slide_geometry(path: Path, properties: Any, dims: tuple[int, int], limits: LimitsConfig) -> None:
    """Refuse a slide whose declared size or tiling exceeds ``limits`` (from the TIFF tags only).

    Args:
        path: the file (named in the error).
        properties: tiffslide's ``properties`` mapping (``tiffslide.level[i].tile-width`` ...).
        dims: level-0 (width, height).
        limits: the caps.

    Raises:
        InputTooLargeError: too many pixels, tiles smaller than ``min_tile_px``, or too many tiles.
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


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`InputTimeoutError` in this block after ``seconds`` (0: no limit).

    Uses ``SIGALRM``, so it works in the main thread of a process (``run``, local batches, each
    Ray worker process); elsewhere it logs once that the limit cannot be enforced and does nothing.
    The error surfaces at the next Python bytecode, so a single long C call (one huge decode) ends
    when it returns; the size caps keep such calls bounded. The alarm repeats until the block
    ends, so a library that swallows one exception (a broad ``except`` around a tile read) does
    not swallow the limit.
    """
    if seconds <= 0:
        yield
        return
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        log.warning("%s: input_timeout_s cannot be enforced outside a main thread", what)
        yield
        return

    def expire(signum: int, frame: object) -> None:
        msg = f"{what}: took longer than the per-input time limit ({seconds:g} s); stopped"
        raise InputTimeoutError(msg)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, min(seconds, 0.05))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
