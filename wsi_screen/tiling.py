"""Overlapping tiles in which every point of the source is owned by exactly one tile.

Tiles overlap by more than the largest cell, and each tile *owns* a core box; the cores
partition the image. A detector keeps only cells whose centre lies in the core, so a cell on a
seam is counted once, by the tile in which it is whole (StarDist's ``is_responsible`` idea).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from wsi_screen.config import TilingConfig
from wsi_screen.errors import ConfigError
from wsi_screen.errors import InputError
from wsi_screen.sources.base import ImageSource
from wsi_screen.types import Tile


@dataclass(frozen=True)
class TileGrid:
    """Level-0 geometry of the tiling: starts, extent and the owned core boundaries per axis."""

    xs: tuple[int, ...]
    ys: tuple[int, ...]
    extent: int
    x_cuts: tuple[int, ...]
    y_cuts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.xs) * len(self.ys)


def _axis(length: int, extent: int, overlap: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if length <= extent:
        return (0,), (0, length)
    stride = extent - overlap
    n = math.ceil((length - overlap) / stride)
    starts = tuple(i * stride for i in range(n))
    # cut between tile i and i+1 halfway through their overlap
    cuts = (0, *(s + stride + overlap // 2 for s in starts[:-1]), length)
    return starts, cuts


def plan_tiles(dimensions: tuple[int, int], cfg: TilingConfig, *, mpp: float, scale: float = 1.0) -> TileGrid:
    """Compute the tile grid for a source of level-0 ``dimensions`` at ``mpp`` um/px.

    Args:
        dimensions: level-0 (width, height).
        cfg: tile size (at the detection scale) and overlap in microns.
        mpp: microns per level-0 pixel.
        scale: level-0 pixels per tile pixel (detection at a coarser scale when > 1).

    Raises:
        ConfigError: the overlap does not fit in the tile.
    """
    extent = round(cfg.tile_size_px * scale)
    overlap = math.ceil(cfg.overlap_um / mpp)
    w, h = dimensions
    if overlap * 2 >= extent and max(w, h) > extent:  # one tile needs no overlap
        msg = (
            f"tiling.overlap_um={cfg.overlap_um} is {overlap} px at {mpp:.4g} um/px, too large for "
            f"tiles of {extent} px; raise tiling.tile_size_px"
        )
        raise ConfigError(msg)
    xs, x_cuts = _axis(w, extent, overlap)
    ys, y_cuts = _axis(h, extent, overlap)
    return TileGrid(xs, ys, extent, x_cuts, y_cuts)


def _best_level(downsamples: tuple[float, ...], scale: float) -> int:
    level = 0
    for i, ds in enumerate(downsamples):
        if ds <= scale * 1.001:
            level = i
    return level


def iter_tiles(
    source: ImageSource,
    cfg: TilingConfig,
    *,
    mpp: float,
    target_mpp: float | None = None,
    unreadable: list[tuple[int, int]] | None = None,
    skip: Callable[[tuple[float, float, float, float]], bool] | None = None,
) -> Iterator[Tile]:
    """Yield overlapping tiles in row-major order; pixels are read lazily, one tile at a time.

    Args:
        source: the field or slide.
        cfg: tiling section of the configuration.
        mpp: microns per level-0 pixel (already resolved).
        target_mpp: detect at this pixel size (tiles are resampled); None keeps level-0 pixels.
        unreadable: when given, a tile whose pixels cannot be read (a corrupt tile inside an
            otherwise valid pyramid) is skipped and its level-0 origin appended here; when None
            the read error propagates.
        skip: when given, a tile whose level-0 extent (x0, y0, x1, y1) it returns true for is
            neither read nor yielded (empty glass, :meth:`wsi_screen.regions.RegionMap.all_empty`);
            tile indices stay those of the full grid.
    """
    scale = 1.0 if target_mpp is None else max(target_mpp / mpp, 1e-6)
    grid = plan_tiles(source.dimensions, cfg, mpp=mpp, scale=scale)
    level = _best_level(source.level_downsamples, scale)
    ds = source.level_downsamples[level]
    tile_px = cfg.tile_size_px
    index = 0
    for j, y in enumerate(grid.ys):
        for i, x in enumerate(grid.xs):
            read = math.ceil(grid.extent / ds)
            if skip is not None and skip((x, y, x + grid.extent, y + grid.extent)):
                index += 1
                continue
            try:
                pixels = source.read_region(x, y, read, read, level=level)
            except InputError:
                if unreadable is None:
                    raise
                unreadable.append((x, y))
                index += 1
                continue
            if pixels.shape[0] != tile_px and abs(scale - 1.0) > 1e-9:
                interp = cv2.INTER_AREA if read > tile_px else cv2.INTER_LINEAR
                pixels = np.asarray(
                    cv2.resize(pixels, (tile_px, tile_px), interpolation=interp), dtype=np.uint8
                )
            core = (grid.x_cuts[i], grid.y_cuts[j], grid.x_cuts[i + 1], grid.y_cuts[j + 1])
            # a level read starts on that level's pixel grid (see read_region) and spans read * ds
            offset = (math.floor(x / ds) * ds - x, math.floor(y / ds) * ds - y)
            yield Tile(
                source_id=source.source_id,
                index=index,
                x=x,
                y=y,
                width=grid.extent,
                height=grid.extent,
                core=core,
                pixels=pixels,
                mpp=mpp * (read * ds / pixels.shape[1]),
                scale=read * ds / pixels.shape[1],
                offset=offset,
            )
            index += 1
