"""Fixed-size cell patches at the classifier's physical scale, batched across tiles and sources."""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Iterator

import cv2
import numpy as np
from numpy.typing import NDArray

from wsi_screen.sources.base import ImageSource
from wsi_screen.types import Cell
from wsi_screen.types import PatchBatch


def crop_patch(
    source: ImageSource, cell: Cell, *, patch_size_px: int, source_mpp: float, model_mpp: float
) -> NDArray[np.uint8]:
    """Cut a square centred on ``cell`` covering ``patch_size_px * model_mpp`` microns.

    The window is read at the source's pixel size and resampled to ``patch_size_px`` when the
    scales differ, so the classifier always sees the physical area it was trained on. Windows
    past the image border are padded (white), keeping every patch the same size.
    """
    side_um = patch_size_px * model_mpp
    side_src = side_um / source_mpp
    if abs(side_src - patch_size_px) < 0.5:
        side = patch_size_px
        x0 = math.floor(cell.x - side / 2 + 0.5)
        y0 = math.floor(cell.y - side / 2 + 0.5)
        return source.read_region(x0, y0, side, side)
    side = max(1, round(side_src))
    x0 = math.floor(cell.x - side / 2 + 0.5)
    y0 = math.floor(cell.y - side / 2 + 0.5)
    win = source.read_region(x0, y0, side, side)
    interp = cv2.INTER_AREA if side > patch_size_px else cv2.INTER_LINEAR
    return cv2.resize(win, (patch_size_px, patch_size_px), interpolation=interp)


def iter_patch_batches(
    items: Iterable[tuple[ImageSource, float, Cell]],
    *,
    patch_size_px: int = 250,
    model_mpp: float,
    batch_size: int = 64,
) -> Iterator[PatchBatch]:
    """Group (source, source_mpp, cell) items into batches of patches.

    Batches may mix cells of several sources, so small fields still fill a batch.
    """
    buf: list[NDArray[np.uint8]] = []
    cells: list[Cell] = []
    for source, source_mpp, cell in items:
        buf.append(
            crop_patch(source, cell, patch_size_px=patch_size_px, source_mpp=source_mpp, model_mpp=model_mpp)
        )
        cells.append(cell)
        if len(buf) == batch_size:
            yield PatchBatch(np.stack(buf), tuple(cells))
            buf, cells = [], []
    if buf:
        yield PatchBatch(np.stack(buf), tuple(cells))
