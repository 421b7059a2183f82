"""What every lazily read pyramid shares: padded region reads, a blockwise thumbnail, size caps.

:class:`PyramidSource` is the base of the DICOM and OpenSlide readers: a subclass tells the size of
its levels and reads a rectangle inside one (:meth:`PyramidSource._read_level`); this class pads
reads outside the slide with white, checks the per-input time limit before each read and builds
thumbnails block by block. :func:`check_levels` applies the ``[limits]`` caps to the geometry a
reader declares, before any pixel is decoded, exactly as for a TIFF.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from wsi_screen.errors import InputError
from wsi_screen.limits import LimitsConfig
from wsi_screen.limits import check_slide_geometry
from wsi_screen.sources.base import PAD_VALUE
from wsi_screen.sources.base import blockwise_thumbnail
from wsi_screen.sources.base import check_read_size


@dataclass(frozen=True)
class LevelGeometry:
    """One level as its file declares it: size, tile (0 x 0 when the reader does not say) and samples."""

    width: int
    height: int
    tile_width: int
    tile_height: int
    samples: int = 3


def check_levels(path: Path, levels: Sequence[LevelGeometry], limits: LimitsConfig) -> None:
    """Refuse a pyramid whose declared geometry exceeds ``limits`` (before any pixel is decoded).

    The same caps as a TIFF's (:func:`wsi_screen.limits.check_slide_geometry`): level-0 pixels,
    smallest tile side, tiles per level, samples one tile decodes to.

    Raises:
        InputTooLargeError: naming the level and the cap.
    """
    props: dict[str, int] = {}
    chunks = []
    for i, lv in enumerate(levels):
        props |= {f"tiffslide.level[{i}].width": lv.width, f"tiffslide.level[{i}].height": lv.height}
        if lv.tile_width > 0 and lv.tile_height > 0:  # 0: the reader does not say (OpenSlide's MRXS)
            props |= {
                f"tiffslide.level[{i}].tile-width": lv.tile_width,
                f"tiffslide.level[{i}].tile-height": lv.tile_height,
            }
            chunks.append(((lv.height, lv.width, lv.samples), (lv.tile_height, lv.tile_width, lv.samples)))
    base = levels[0]
    check_slide_geometry(path, props, (base.width, base.height), limits, chunks=chunks)


class PyramidSource:
    """A lazily read multi-level image with level-0 coordinates and white padding at its edges.

    Subclasses set ``path``, ``source_id``, ``_dims`` (level-0 width, height), ``_downs`` (each
    level's downsample), the pixel size attributes and ``reader``, and implement
    :meth:`level_dimensions`, :meth:`_read_level` and :meth:`close`.
    """

    path: Path | None
    source_id: str
    mpp: float | None = None
    mpp_y: float | None = None
    mpp_origin: str | None = None
    """Which metadata the pixel size came from (``"DICOM Pixel Measures"``...); None without one."""
    mpp_warnings: tuple[str, ...] = ()
    """Contradictions found in the pixel size metadata (reported as warnings)."""
    reader: str = ""
    """The reader and its version, as report.json's ``input.reader`` names it."""
    _dims: tuple[int, int] = (0, 0)
    _downs: tuple[float, ...] = (1.0,)
    level_samples: tuple[int, ...] = ()

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        return self._dims

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Downsample factor of each level (1.0 first)."""
        return self._downs

    @property
    def level_count(self) -> int:
        """Number of levels."""
        return len(self._downs)

    def level_dimensions(self, level: int) -> tuple[int, int]:
        """(width, height) of a level."""
        raise NotImplementedError

    def _read_level(self, level: int, x: int, y: int, width: int, height: int) -> NDArray[np.uint8]:
        """RGB pixels of a rectangle lying inside ``level`` (level coordinates), shape (height, width, 3)."""
        raise NotImplementedError

    def read_region(self, x: int, y: int, width: int, height: int, *, level: int = 0) -> NDArray[np.uint8]:
        """Read a region whose top-left is level-0 (x, y), size in level pixels; white outside."""
        if not 0 <= level < self.level_count:
            msg = f"{self.path}: level {level} out of range (0..{self.level_count - 1})"
            raise InputError(msg)
        ds = self._downs[level]
        lw, lh = self.level_dimensions(level)
        lx, ly = math.floor(x / ds), math.floor(y / ds)
        check_read_size(self.path, width, height)
        out = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
        x0, y0 = max(lx, 0), max(ly, 0)
        x1, y1 = min(lx + width, lw), min(ly + height, lh)
        if x1 <= x0 or y1 <= y0:
            return out
        rgb = self._read_level(level, x0, y0, x1 - x0, y1 - y0)
        out[y0 - ly : y1 - ly, x0 - lx : x1 - lx] = rgb[: y1 - y0, : x1 - x0]
        return out

    def thumbnail(self, max_side: int, *, block: int = 4096) -> NDArray[np.uint8]:
        """Overview from the smallest level still at least ``max_side``, read ``block`` px at a time."""
        return blockwise_thumbnail(self, max_side, block=block)

    def close(self) -> None:
        """Release file handles."""
        raise NotImplementedError

    def __enter__(self) -> PyramidSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
