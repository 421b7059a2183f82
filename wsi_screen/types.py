"""Core records passed between pipeline stages.

All coordinates are level-0 source pixels, (x, y) order, top-left origin. Images between stages are
RGB uint8 arrays of shape (H, W, 3). Physical sizes carry a unit suffix (``_px``, ``_um``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

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
    """Fixed-size RGB crops centred on cells (B x P x P x 3), padded at image borders.

    ``model_input``, when given, is the same patches already resized for the network (cut and
    resized on a worker thread ahead of the model, :class:`wsi_screen.patches.Precut`).
    """

    pixels: NDArray[np.uint8]
    cells: tuple[Cell, ...]
    model_input: NDArray[np.uint8] | None = None


class DomainJudge(Protocol):
    """What judges an input against the model's training data (a classifier's domain reference)."""

    def judge(
        self, stats: NDArray[np.floating[Any]], feature_distances: NDArray[np.floating[Any]]
    ) -> dict[str, Any]:
        """Judge one input from its cells' colour statistics and feature distances."""
        ...

    @property
    def cell_threshold(self) -> float:
        """A cell whose feature distance (novelty) is above this is unfamiliar (inf: never)."""
        ...


@dataclass(frozen=True, slots=True)
class CellCalls:
    """Class probabilities for a batch of cells, columnar.

    Attributes:
        cells: the cells, in row order.
        probs: N x C class probabilities.
        class_names: the C class codes.
        classifier: name of the classifier that made the calls.
        domain_stats: N x 7 per-cell evidence for the out-of-domain gate (six colour statistics,
            then the feature distance), when the classifier carries a domain reference.
        domain_reference: that reference (the same object for every batch of one classifier).
    """

    cells: tuple[Cell, ...]
    probs: NDArray[np.float32]
    class_names: tuple[str, ...]
    classifier: str = ""
    domain_stats: NDArray[np.float32] | None = None
    domain_reference: DomainJudge | None = None

    def rows(self, start: int, end: int) -> CellCalls:
        """The calls of cells ``start`` to ``end - 1``, with their domain evidence."""
        return CellCalls(
            self.cells[start:end],
            self.probs[start:end],
            self.class_names,
            self.classifier,
            None if self.domain_stats is None else self.domain_stats[start:end],
            self.domain_reference,
        )

    def select(self, keep: Sequence[bool]) -> CellCalls:
        """The calls of the cells where ``keep`` is true, in order, with their domain evidence."""
        idx = np.flatnonzero(np.asarray(keep, dtype=bool))
        return CellCalls(
            tuple(self.cells[i] for i in idx),
            self.probs[idx],
            self.class_names,
            self.classifier,
            None if self.domain_stats is None else self.domain_stats[idx],
            self.domain_reference,
        )

    def judge_domain(self) -> dict[str, Any] | None:
        """The out-of-domain judgement over these cells; None when the classifier has no reference."""
        if self.domain_reference is None or self.domain_stats is None:
            return None
        return self.domain_reference.judge(self.domain_stats[:, :6], self.domain_stats[:, 6])

    @property
    def novelty(self) -> NDArray[np.float32] | None:
        """Per-cell novelty (higher = less familiar), None without a domain reference.

        The novelty is the cell's feature distance to the nearest training class.
        """
        if self.domain_stats is None:
            return None
        return np.asarray(self.domain_stats[:, 6], dtype=np.float32)

    @property
    def unfamiliar(self) -> NDArray[np.bool_] | None:
        """Per-cell flag: novelty above the reference's fitted cell threshold (None: none fitted)."""
        nov = self.novelty
        if nov is None or self.domain_reference is None:
            return None
        threshold = float(self.domain_reference.cell_threshold)
        if not np.isfinite(threshold):  # a reference fitted before the flag existed: nothing decided
            return None
        return np.asarray(nov > threshold, dtype=bool)

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
        stats, ref = concat_domain(parts)
        return CellCalls(tuple(cells), arr, class_names, classifier, stats, ref)


def concat_domain(parts: Sequence[CellCalls]) -> tuple[NDArray[np.float32] | None, DomainJudge | None]:
    """The domain evidence of several batches joined, when every batch has it (else none)."""
    refs = [p.domain_reference for p in parts]
    if not parts or any(r is None for r in refs) or any(p.domain_stats is None for p in parts):
        return None, None
    stats = np.concatenate([p.domain_stats for p in parts if p.domain_stats is not None]).astype(np.float32)
    return stats, refs[0]


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
