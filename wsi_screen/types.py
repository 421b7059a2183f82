"""Core records passed between pipeline stages.

All coordinates are level-0 source pixels, (x, y) order, top-left origin. Images between stages are
RGB uint8 arrays of shape (H, W, 3). Physical sizes carry a unit suffix (``_px``, ``_um``).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

import numpy as np
from numpy.typing import NDArray

BBox = tuple[int, int, int, int]
"""(x0, y0, x1, y1), x1/y1 exclusive, level-0 pixels."""

XY = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Tile:
    """A rectangular window of a source, with the part of it this tile owns.

    A detection belongs to the tile whose ``core`` contains its centre, so that overlapping tiles
    never count one cell twice. Tiles are read at a (possibly downsampled) pyramid level:
    ``scale`` is level-0 pixels per tile pixel.
    """

    source_id: str
    index: int
    x: int
    y: int
    width: int
    height: int
    core: BBox
    pixels: NDArray[np.uint8]
    mpp: float
    scale: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)
    """Level-0 position of the tile's first pixel minus (x, y): a pyramid level read starts on
    that level's pixel grid, which may lie a few level-0 pixels before (x, y)."""

    def to_level0(self, px: float, py: float) -> tuple[float, float]:
        """Level-0 (x, y) of a point given in tile pixel indices (pixel centres at integers).

        Example:
            >>> t = Tile("s", 0, 100, 0, 40, 40, (0, 0, 200, 200), np.zeros((10, 10, 3), np.uint8), 0.4, 4.0)
            >>> t.to_level0(0, 0)  # tile pixel 0 covers level-0 pixels 100..103
            (101.5, 1.5)
        """
        s = self.scale
        return (
            self.x + self.offset[0] + (px + 0.5) * s - 0.5,
            self.y + self.offset[1] + (py + 0.5) * s - 0.5,
        )

    def edge_to_level0(self, ex: float, ey: float) -> tuple[float, float]:
        """Level-0 (x, y) of a point given in continuous tile coordinates (box edges: pixel i spans [i, i+1))."""
        return self.x + self.offset[0] + ex * self.scale, self.y + self.offset[1] + ey * self.scale

    def owns(self, x: float, y: float) -> bool:
        """Return whether level-0 point (x, y) lies in this tile's core."""
        x0, y0, x1, y1 = self.core
        return x0 <= x < x1 and y0 <= y < y1


@dataclass(frozen=True, slots=True)
class Cell:
    """One localised cell: centre and box in level-0 pixels."""

    cell_id: int
    source_id: str
    x: float
    y: float
    bbox: BBox
    score: float
    detector: str
    tile_index: int = -1


@dataclass(frozen=True, slots=True)
class PatchBatch:
    """Fixed-size RGB crops centred on cells (B x P x P x 3), padded at image borders."""

    pixels: NDArray[np.uint8]
    cells: tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class CellCalls:
    """Class probabilities for a batch of cells, columnar."""

    cells: tuple[Cell, ...]
    probs: NDArray[np.float32]
    class_names: tuple[str, ...]
    classifier: str = ""

    @property
    def labels(self) -> list[str]:
        """Argmax class code per cell."""
        if len(self.cells) == 0:
            return []
        return [self.class_names[i] for i in np.argmax(self.probs, axis=1)]

    @property
    def confidence(self) -> NDArray[np.float32]:
        """Maximum class probability per cell."""
        if len(self.cells) == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.probs.max(axis=1), dtype=np.float32)

    @staticmethod
    def concat(parts: list[CellCalls], class_names: tuple[str, ...], classifier: str = "") -> CellCalls:
        """Join several batches into one record (empty input gives an empty record)."""
        cells: list[Cell] = []
        probs: list[NDArray[np.float32]] = []
        for p in parts:
            cells.extend(p.cells)
            probs.append(p.probs)
        arr = (
            np.concatenate(probs, axis=0).astype(np.float32)
            if probs
            else np.zeros((0, len(class_names)), dtype=np.float32)
        )
        return CellCalls(tuple(cells), arr, class_names, classifier)


@dataclass(frozen=True, slots=True)
class Failure:
    """An input that could not be screened, with the stage that failed."""

    source: str
    stage: str
    error_type: str
    message: str


@dataclass(slots=True)
class StageTimer:
    """Accumulates wall-clock seconds per named stage."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, dt: float) -> None:
        """Add ``dt`` seconds to ``stage``."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt
