"""The detector contract: a tile in, cells owned by that tile out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import Protocol
from typing import runtime_checkable

from wsi_screen.types import Cell
from wsi_screen.types import Tile


@runtime_checkable
class Detector(Protocol):
    """Localises cells in a tile.

    ``detect`` returns cells in level-0 coordinates (tile offset and ``tile.scale`` applied, see
    ``Tile.to_level0``) whose centre lies in ``tile.core``. The pipeline passes a core widened by
    a seam margin of a few pixels and keeps one of any detections of different tiles that close
    together, so a cell on a seam is counted once. ``cell_id`` and ``tile_index`` may be left at
    their defaults: the pipeline numbers cells and records their tiles.
    """

    name: str

    @property
    def target_mpp(self) -> float | None:
        """Microns per pixel the detector wants its tiles at (None: any scale)."""
        ...

    def detect(self, tile: Tile) -> list[Cell]:
        """Return the cells this tile owns."""
        ...

    def params(self) -> dict[str, Any]:
        """Parameters echoed into the report."""
        ...


class BaseDetector:
    """Optional helper base: ``detect_batch`` as a loop over ``detect``."""

    name: str = "base"

    @property
    def target_mpp(self) -> float | None:
        """Any scale by default."""
        return None

    def detect(self, tile: Tile) -> list[Cell]:
        """Subclasses implement this."""
        raise NotImplementedError

    def detect_batch(self, tiles: Sequence[Tile]) -> list[list[Cell]]:
        """Detect on several tiles."""
        return [self.detect(t) for t in tiles]

    def params(self) -> dict[str, Any]:
        """No parameters by default."""
        return {}
