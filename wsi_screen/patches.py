"""Fixed-size cell patches at the classifier's physical scale, batched across tiles and sources."""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import cv2
import numpy as np
from numpy.typing import NDArray

from wsi_screen.sources.base import ImageSource
from wsi_screen.types import Cell
from wsi_screen.types import PatchBatch


def _window(cell: Cell, patch_size_px: int, source_mpp: float, model_mpp: float) -> tuple[int, int, int]:
    """Level-0 (x0, y0, side) of the square covering ``patch_size_px * model_mpp`` um around ``cell``."""
    side_src = patch_size_px * model_mpp / source_mpp
    side = patch_size_px if abs(side_src - patch_size_px) < 0.5 else max(1, round(side_src))
    return math.floor(cell.x - side / 2 + 0.5), math.floor(cell.y - side / 2 + 0.5), side


def _fit(win: NDArray[np.uint8], patch_size_px: int) -> NDArray[np.uint8]:
    side = win.shape[0]
    if side == patch_size_px:
        return win
    interp = cv2.INTER_AREA if side > patch_size_px else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(win, (patch_size_px, patch_size_px), interpolation=interp), dtype=np.uint8)


def crop_patch(
    source: ImageSource, cell: Cell, *, patch_size_px: int, source_mpp: float, model_mpp: float
) -> NDArray[np.uint8]:
    """Cut a square centred on ``cell`` covering ``patch_size_px * model_mpp`` microns.

    The window is read at the source's pixel size and resampled to ``patch_size_px`` when the
    scales differ, so the classifier always sees the physical area it was trained on. Windows
    past the image border are padded (white), keeping every patch the same size.
    """
    x0, y0, side = _window(cell, patch_size_px, source_mpp, model_mpp)
    return _fit(source.read_region(x0, y0, side, side), patch_size_px)


def crop_patches(
    source: ImageSource,
    cells: Sequence[Cell],
    *,
    patch_size_px: int,
    source_mpp: float,
    model_mpp: float,
    max_window_px: int = 4096,
) -> list[NDArray[np.uint8]]:
    """Patches of several cells of one source, as :func:`crop_patch` cuts them, read together.

    Neighbouring cells (those of one detection tile) share one read of the window that covers all
    their patches, so a tiled slide decodes each region about once instead of once per cell. A
    group whose window would exceed ``max_window_px`` on a side, or be mostly empty, is read
    cell by cell.
    """
    wins = [_window(c, patch_size_px, source_mpp, model_mpp) for c in cells]
    out: list[NDArray[np.uint8]] = []
    start = 0
    while start < len(cells):
        end = start + 1
        while end < len(cells) and cells[end].tile_index == cells[start].tile_index:
            end += 1
        group = wins[start:end]
        gx0 = min(x for x, _, _ in group)
        gy0 = min(y for _, y, _ in group)
        gx1 = max(x + s for x, _, s in group)
        gy1 = max(y + s for _, y, s in group)
        area = (gx1 - gx0) * (gy1 - gy0)
        dense = area <= 8 * sum(s * s for _, _, s in group)  # else per-cell reads decode less
        if end - start > 1 and dense and max(gx1 - gx0, gy1 - gy0) <= max_window_px:
            region = source.read_region(gx0, gy0, gx1 - gx0, gy1 - gy0)
            out.extend(
                _fit(region[y - gy0 : y - gy0 + s, x - gx0 : x - gx0 + s], patch_size_px) for x, y, s in group
            )
        else:
            out.extend(_fit(source.read_region(x, y, s, s), patch_size_px) for x, y, s in group)
        start = end
    return out


def iter_patch_batches(
    items: Iterable[tuple[ImageSource, float, Cell]],
    *,
    patch_size_px: int = 250,
    model_mpp: float,
    batch_size: int = 64,
) -> Iterator[PatchBatch]:
    """Group (source, source_mpp, cell) items into batches of patches.

    Batches may mix cells of several sources, so small fields still fill a batch. Consecutive
    cells of one source are cropped together (:func:`crop_patches`).
    """
    items = list(items)
    for b in range(0, len(items), batch_size):
        chunk = items[b : b + batch_size]
        patches: list[NDArray[np.uint8]] = []
        for (source, source_mpp), run in groupby(chunk, key=lambda it: (it[0], it[1])):
            cells = [c for _, _, c in run]
            patches.extend(
                crop_patches(
                    source, cells, patch_size_px=patch_size_px, source_mpp=source_mpp, model_mpp=model_mpp
                )
            )
        yield PatchBatch(np.stack(patches), tuple(c for _, _, c in chunk))


PRECUT_MAX_CELLS = 256
"""Inputs with at most this many cells (microscope fields) have all their patches cut at once on
the read-ahead worker (:class:`Precut`), about 70 MB at most for 250 px patches; more (slides) are
cut batch by batch on the model's thread."""


@dataclass
class Precut:
    """Every patch of one input, cut ahead of the model, handed out in cell order.

    Attributes:
        cells: the input's cells, in the order of the patches.
        pixels: N x P x P x 3 patches at the model's physical scale (``patch_size_px``).
        model_input: the same patches as the network takes them (resized to its input size), or
            None when the classifier gives no such step.
        taken: patches handed out so far.
    """

    cells: tuple[Cell, ...]
    pixels: NDArray[np.uint8]
    model_input: NDArray[np.uint8] | None
    taken: int = 0

    def take(self, cells: Sequence[Cell]) -> tuple[NDArray[np.uint8], NDArray[np.uint8] | None]:
        """The patches (and model input) of ``cells``, which must be the input's next cells.

        Raises:
            IndexError: ``cells`` are not the next ones (a patch is never handed to another cell).
        """
        a, b = self.taken, self.taken + len(cells)
        if tuple(cells) != self.cells[a:b]:
            msg = f"patches of cells {a}-{b - 1} asked for out of order ({len(self.cells)} cut)"
            raise IndexError(msg)
        self.taken = b
        return self.pixels[a:b], None if self.model_input is None else self.model_input[a:b]


def precut(
    source: ImageSource,
    cells: Sequence[Cell],
    *,
    patch_size_px: int,
    source_mpp: float,
    model_mpp: float,
    model_input: Callable[[NDArray[np.uint8]], NDArray[np.uint8]] | None = None,
) -> Precut:
    """All patches of ``cells`` (:func:`crop_patches`) and, with ``model_input``, the network's input of them."""
    pixels = np.stack(
        crop_patches(source, cells, patch_size_px=patch_size_px, source_mpp=source_mpp, model_mpp=model_mpp)
    )
    return Precut(tuple(cells), pixels, None if model_input is None else model_input(pixels))
