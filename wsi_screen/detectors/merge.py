"""Cross-tile merging: one detection per cell when boxes from neighbouring tiles overlap.

Tile ownership (``Tile.owns``) already keeps most duplicates out. What can slip through is a cell
on a seam reported by two tiles with slightly different boxes (one of them cut by its tile's edge)
whose centres fall on either side of the seam. :func:`merge_cells` is a greedy non-maximum
suppression over all tiles of a source: highest score first, a cell is dropped when its box
overlaps an already kept box of the same source by more than a threshold. Candidate pairs come
from a shapely STRtree, so merging stays near-linear for slides with many cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from wsi_screen.types import BBox
from wsi_screen.types import Cell

OverlapMetric = Literal["iou", "iomin"]


def box_overlap(a: BBox, b: BBox, metric: OverlapMetric = "iou") -> float:
    """Overlap of two boxes: intersection over union, or over the smaller box's area (``iomin``).

    ``iomin`` treats a box cut by a tile edge, which lies inside the whole cell's box, as a
    duplicate even though their IoU is low.
    """
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    denom = min(area_a, area_b) if metric == "iomin" else area_a + area_b - inter
    return float(inter / denom) if denom > 0 else 0.0


def merge_cells(
    cells: Sequence[Cell],
    *,
    iou: float = 0.5,
    metric: OverlapMetric = "iou",
    across_tiles_only: bool = True,
) -> list[Cell]:
    """Suppress duplicate detections of one cell across tiles (greedy NMS per source).

    Args:
        cells: detections from any number of tiles and sources, level-0 boxes.
        iou: overlap above which the lower-scoring cell is dropped.
        metric: ``"iou"`` or ``"iomin"`` (intersection over the smaller area).
        across_tiles_only: compare only cells from different tiles (``tile_index``); within one
            tile the detector's own NMS has already decided, and touching cells stay apart.

    Returns:
        The kept cells, in their input order. Every input cell is either kept or overlaps a kept
        cell of the same source (and another tile, with ``across_tiles_only``) by more than
        ``iou``; no two kept cells compared that way overlap by more.

    Example:
        >>> merged = merge_cells(cells_from_all_tiles, iou=0.5)  # doctest: +SKIP
    """
    if len(cells) < 2:
        return list(cells)
    from shapely import STRtree  # shapely is heavy; only needed here
    from shapely import box as shp_box

    keep_idx: list[int] = []
    by_source: dict[str, list[int]] = {}
    for i, c in enumerate(cells):
        by_source.setdefault(c.source_id, []).append(i)
    for idx in by_source.values():
        geoms = [shp_box(*cells[i].bbox) for i in idx]
        tree = STRtree(geoms)
        # highest score first; ties by position so the result does not depend on tile order
        order = sorted(
            range(len(idx)),
            key=lambda k: (-cells[idx[k]].score, cells[idx[k]].y, cells[idx[k]].x),
        )
        suppressed = np.zeros(len(idx), dtype=bool)
        for k in order:
            if suppressed[k]:
                continue
            keep_idx.append(idx[k])
            for j in tree.query(geoms[k]):
                j = int(j)
                if j == k or suppressed[j]:
                    continue
                if across_tiles_only and cells[idx[j]].tile_index == cells[idx[k]].tile_index:
                    continue
                if box_overlap(cells[idx[k]].bbox, cells[idx[j]].bbox, metric) > iou:
                    suppressed[j] = True
    return [cells[i] for i in sorted(keep_idx)]


def once_per_seam(owned: Sequence[Cell], extra: Sequence[Cell], *, radius: float) -> list[Cell]:
    """Count each seam cell once: drop detections of another tile within ``radius`` of a kept one.

    ``owned`` are the cells each tile found in its own core; ``extra`` those found just outside it
    (within a seam margin). Two overlapping tiles resample and threshold the same cell slightly
    differently, so a cell on a seam can land a fraction of a pixel outside both cores (then only
    ``extra`` has it) or inside both (then ``owned`` has it twice). Cells are kept greedily, owned
    before extra and higher score first; a cell is dropped when a kept cell of the same source but
    another tile lies within ``radius`` (a few pixels: distinct cells are never that close).

    Returns:
        The kept cells, in their input order (``owned`` then ``extra``).
    """
    cells = [*owned, *extra]
    if radius <= 0 or len(cells) < 2:
        return cells
    order = sorted(range(len(cells)), key=lambda i: (i >= len(owned), -cells[i].score, i))
    grid: dict[tuple[str, int, int], list[Cell]] = {}
    keep = np.zeros(len(cells), dtype=bool)
    for i in order:
        c = cells[i]
        gx, gy = int(c.x // radius), int(c.y // radius)
        near = (
            k for dx in (-1, 0, 1) for dy in (-1, 0, 1) for k in grid.get((c.source_id, gx + dx, gy + dy), ())
        )
        if any(k.tile_index != c.tile_index and np.hypot(k.x - c.x, k.y - c.y) <= radius for k in near):
            continue
        keep[i] = True
        grid.setdefault((c.source_id, gx, gy), []).append(c)
    return [c for i, c in enumerate(cells) if keep[i]]
