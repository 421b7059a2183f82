"""Cross-tile merging and tile ownership of the YOLO adapter never count a cell twice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from _helpers import match_centres
from _synthetic import synthetic_field

from wsi_screen.config import TilingConfig
from wsi_screen.detectors.merge import box_overlap
from wsi_screen.detectors.merge import merge_cells
from wsi_screen.detectors.yolo import YoloDetector
from wsi_screen.detectors.yolo import content_window
from wsi_screen.sources import FieldSource
from wsi_screen.stages import detect_cells
from wsi_screen.tiling import plan_tiles
from wsi_screen.types import Cell
from wsi_screen.types import Tile


def _random_discs(n: int, w: int, h: int, r: float, seed: int) -> list[tuple[float, float]]:
    """Non-overlapping disc centres, some cut by the image border."""
    rng = np.random.default_rng(seed)
    out: list[tuple[float, float]] = []
    while len(out) < n:
        x, y = rng.uniform(-0.5 * r, w + 0.5 * r), rng.uniform(-0.5 * r, h + 0.5 * r)
        if 0 <= x < w and 0 <= y < h and all(np.hypot(x - a, y - b) > 2.6 * r for a, b in out):
            out.append((float(x), float(y)))
    return out


def _tile_windows(w: int, h: int, size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    stride = size - overlap
    xs = range(0, max(1, w - overlap), stride)
    ys = range(0, max(1, h - overlap), stride)
    return [(x, y, min(x + size, w), min(y + size, h)) for y in ys for x in xs]


def _clipped_detections(
    discs: Sequence[tuple[float, float]], r: float, windows: Sequence[tuple[int, int, int, int]]
) -> list[Cell]:
    """What a naive per-tile detector reports: every visible part of a disc, box clipped to tile."""
    cells = []
    for t, (x0, y0, x1, y1) in enumerate(windows):
        for k, (cx, cy) in enumerate(discs):
            bx0, by0 = max(x0, cx - r), max(y0, cy - r)
            bx1, by1 = min(x1, cx + r), min(y1, cy + r)
            if bx1 - bx0 > 2 and by1 - by0 > 2:
                score = 0.5 + 0.4 * ((bx1 - bx0) * (by1 - by0)) / (4 * r * r) - 1e-3 * k
                box = (int(bx0), int(by0), int(np.ceil(bx1)), int(np.ceil(by1)))
                cells.append(Cell(-1, "s", (bx0 + bx1) / 2, (by0 + by1) / 2, box, score, "yolo", t))
    return cells


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_never_double_counts_clipped_tile_boxes(seed: int) -> None:
    r = 40.0
    discs = _random_discs(60, 1500, 1200, r, seed)
    raw = _clipped_detections(discs, r, _tile_windows(1500, 1200, 400, 120))
    assert len(raw) > len(discs)  # seams really produced duplicates
    merged = merge_cells(raw, iou=0.3, metric="iomin")
    hits, multi, extra = match_centres([(c.x, c.y) for c in merged], discs, radius=r)
    assert (hits, multi, extra) == (len(discs), 0, 0)
    assert len(merged) == len(discs)


def test_merge_keeps_best_and_is_idempotent() -> None:
    a = Cell(-1, "s", 10, 10, (0, 0, 20, 20), 0.9, "yolo")
    b = Cell(-1, "s", 11, 11, (1, 1, 21, 21), 0.8, "yolo")  # duplicate of a
    c = Cell(-1, "s", 60, 60, (50, 50, 70, 70), 0.4, "yolo")
    d = Cell(-1, "t", 10, 10, (0, 0, 20, 20), 0.1, "yolo")  # same place, other source: kept
    merged = merge_cells([b, a, c, d], iou=0.5, across_tiles_only=False)
    assert merged == [a, c, d]
    assert merge_cells(merged, iou=0.5, across_tiles_only=False) == merged
    assert merge_cells([], iou=0.5) == []
    assert merge_cells(merged + merged, iou=0.5, across_tiles_only=False) == merged
    # within one tile the detector's NMS has decided: touching cells are not merged by default
    assert merge_cells([b, a, c, d], iou=0.5) == [b, a, c, d]


def test_merged_boxes_do_not_overlap_above_threshold() -> None:
    rng = np.random.default_rng(5)
    cells = []
    for i in range(300):
        x, y = rng.uniform(0, 500, 2)
        s = rng.uniform(10, 40)
        box = (int(x), int(y), int(x + s), int(y + s))
        cells.append(Cell(-1, "s", x + s / 2, y + s / 2, box, float(rng.uniform()), "yolo", i))
    merged = merge_cells(cells, iou=0.4, across_tiles_only=False)
    for i, p in enumerate(merged):
        for q in merged[i + 1 :]:
            assert box_overlap(p.bbox, q.bbox) <= 0.4
    kept = set(map(id, merged))
    for c in cells:  # every dropped cell overlaps a kept one
        if id(c) not in kept:
            assert any(box_overlap(c.bbox, k.bbox) > 0.4 for k in merged)


def test_box_overlap_metrics() -> None:
    assert box_overlap((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_overlap((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_overlap((0, 0, 10, 10), (0, 0, 5, 10)) == pytest.approx(0.5)
    assert box_overlap((0, 0, 10, 10), (0, 0, 5, 10), "iomin") == pytest.approx(1.0)


def _has_content(tile: Tile) -> bool:
    x0, y0, x1, y1 = content_window(tile.pixels)
    return x1 > x0 and y1 > y0


class _OracleYolo(YoloDetector):
    """The adapter's tile logic with a perfect 'model' that sees the discs, cut at tile edges."""

    def __init__(self, discs: Sequence[tuple[float, float]], r: float) -> None:
        self.discs, self.r = discs, r
        self.weights = Path("oracle.pt")
        self._cfg = {}
        self.conf, self.iou, self.imgsz, self.classes, self.device = 0.25, 0.5, None, None, "cpu"
        self._mpp = None
        self.current: list[Tile] = []

    def detect_batch(self, tiles: Sequence[Tile]) -> list[list[Cell]]:
        self.current = [t for t in tiles if _has_content(t)]  # the tiles the adapter will predict
        return super().detect_batch(tiles)

    def predict_boxes_batch(
        self, images: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        assert len(images) == len(self.current)
        return [self._boxes(t, rgb) for t, rgb in zip(self.current, images, strict=True)]

    def _boxes(self, t: Tile, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = rgb.shape[:2]
        boxes = []
        for cx, cy in self.discs:
            # disc in tile pixels, clipped to the tile and to the image (padding shows nothing)
            x0, y0 = (cx - self.r - t.x) / t.scale, (cy - self.r - t.y) / t.scale
            x1, y1 = (cx + self.r - t.x) / t.scale, (cy + self.r - t.y) / t.scale
            x0, y0 = max(x0, 0.0, -t.x / t.scale), max(y0, 0.0, -t.y / t.scale)
            x1 = min(x1, w, (self.img_w - t.x) / t.scale)
            y1 = min(y1, h, (self.img_h - t.y) / t.scale)
            if x1 - x0 > 1 and y1 - y0 > 1:
                boxes.append((x0, y0, x1, y1))
        arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        return arr, np.full(len(arr), 0.9, np.float32), np.zeros(len(arr), np.int64)


@pytest.mark.parametrize(("target_mpp", "seed"), [(None, 0), (None, 1), (0.17, 2)])
def test_adapter_tile_ownership_counts_each_cell_once(target_mpp: float | None, seed: int) -> None:
    """Overlap above the cell diameter: tile ownership alone finds every cell exactly once."""
    mpp = 0.0862
    r = 6.0 / mpp  # 12 um cells
    w, h = 2452, 2056
    discs = _random_discs(70, w, h, r, seed)
    img = synthetic_field(w, h, discs, mpp=mpp, n_rbc=0, seed=seed)
    det = _OracleYolo(discs, r)
    det.img_w, det.img_h = w, h
    det._mpp = target_mpp
    tiling = TilingConfig(tile_size_px=640, overlap_um=15.0)  # overlap 15 um > a 12 um cell
    cells = detect_cells(FieldSource(img, source_id="f", mpp=mpp), det, tiling, mpp=mpp)
    hits, multi, extra = match_centres([(c.x, c.y) for c in cells], discs, radius=0.5 * r)
    assert (hits, multi, extra) == (len(discs), 0, 0)
    assert len({c.tile_index for c in cells}) > 4
    inner = [c for c in cells if r < c.x < w - r and r < c.y < h - r]
    for c in inner:  # whole cells: the box is the disc's, in level-0 pixels
        x0, y0, x1, y1 = c.bbox
        assert x1 - x0 == pytest.approx(2 * r, abs=3 * (target_mpp or mpp) / mpp + 2)
    assert merge_cells(cells, iou=0.3, metric="iomin") == cells  # nothing left to merge


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_merge_repairs_ownership_when_overlap_is_below_a_cell(seed: int) -> None:
    """Overlap 6 um < a 12 um cell: cut boxes may be owned twice; merging leaves one per cell."""
    mpp = 0.0862
    r = 6.0 / mpp
    w, h = 2452, 2056
    discs = _random_discs(40, w, h, r, seed)
    det = _OracleYolo(discs, r)
    det.img_w, det.img_h = w, h
    tiling = TilingConfig(tile_size_px=500, overlap_um=6.0)
    cells = detect_cells(
        FieldSource(np.full((h, w, 3), 240, np.uint8), source_id="f", mpp=mpp), det, tiling, mpp=mpp
    )
    merged = merge_cells(cells, iou=0.3, metric="iomin")
    hits, multi, extra = match_centres([(c.x, c.y) for c in merged], discs, radius=r)
    assert (hits, multi) == (len(discs), 0)
    assert extra == 0
    assert len(merged) == len(discs) < len(cells)  # ownership alone had double-counted


class _JitterDetector:
    """Finds known centres, shifted by up to +/- ``shift`` level-0 px depending on the tile (as
    two tiles resampled on their own grids place one cell slightly differently)."""

    name = "jitter"
    target_mpp = None

    def __init__(self, centres: list[tuple[float, float]], shift: float) -> None:
        self.centres = centres
        self.shift = shift

    def detect(self, tile: Tile) -> list[Cell]:
        s = self.shift if tile.index % 2 else -self.shift
        out = []
        for x, y in self.centres:
            x, y = x + s, y - s
            if tile.x <= x < tile.x + tile.width and tile.y <= y < tile.y + tile.height and tile.owns(x, y):
                box = (int(x) - 20, int(y) - 20, int(x) + 20, int(y) + 20)
                out.append(Cell(-1, tile.source_id, x, y, box, 0.9, self.name, tile.index))
        return out

    def params(self) -> dict[str, float]:
        return {"shift": self.shift}


@pytest.mark.parametrize("shift", [0.3, 0.9])
def test_cells_on_seams_are_counted_once_even_when_tiles_disagree_by_a_pixel(shift: float) -> None:
    src = FieldSource(np.full((1000, 1400, 3), 230, np.uint8), source_id="f")
    cfg = TilingConfig(tile_size_px=512, overlap_um=10.0)
    grid = plan_tiles((1400, 1000), cfg, mpp=0.1)
    cuts_x, cuts_y = grid.x_cuts[1:-1], grid.y_cuts[1:-1]
    # cells exactly on, and a hair either side of, every vertical and horizontal cut
    centres = [(cx + d, 300.0 + 150 * k) for cx in cuts_x for k, d in enumerate((-0.4, 0.0, 0.4))]
    centres += [(200.0 + 150 * k, cy + d) for cy in cuts_y for k, d in enumerate((-0.4, 0.0, 0.4))]
    centres.append((800.0, 800.0))  # an ordinary cell inside one tile
    cells = detect_cells(src, _JitterDetector(centres, shift), cfg, mpp=0.1)
    hits, multi, extra = match_centres([(c.x, c.y) for c in cells], centres, radius=2.0)
    assert (hits, multi, extra) == (len(centres), 0, 0)
    assert [c.cell_id for c in cells] == list(range(len(cells)))


def test_once_per_seam_keeps_distinct_neighbours() -> None:
    from wsi_screen.detectors.merge import once_per_seam

    a = Cell(-1, "s", 100.0, 100.0, (80, 80, 120, 120), 0.9, "d", 0)
    b = Cell(-1, "s", 100.5, 100.2, (80, 80, 121, 120), 0.8, "d", 1)  # the same cell from tile 1
    c = Cell(-1, "s", 130.0, 100.0, (110, 80, 150, 120), 0.8, "d", 1)  # a touching neighbour
    d = Cell(-1, "s", 100.2, 100.1, (80, 80, 120, 120), 0.7, "d", 0)  # same tile: its own decision
    assert once_per_seam([a, c, d], [b], radius=4.0) == [a, c, d]
    assert once_per_seam([a], [b, c], radius=4.0) == [a, c]


class _NoTileIndexDetector(_JitterDetector):
    """A plug-in detector that leaves ``Cell.tile_index`` at its default (-1)."""

    def detect(self, tile: Tile) -> list[Cell]:
        return [Cell(-1, c.source_id, c.x, c.y, c.bbox, c.score, c.detector) for c in super().detect(tile)]


def test_seam_cells_of_a_detector_that_sets_no_tile_index_are_counted_once() -> None:
    src = FieldSource(np.full((600, 1400, 3), 230, np.uint8), source_id="f")
    cfg = TilingConfig(tile_size_px=512, overlap_um=10.0)
    cuts = plan_tiles((1400, 600), cfg, mpp=0.1).x_cuts[1:-1]
    # just past each cut: owned by the right tile, and within the left tile's seam margin
    centres = [(cx + d, 300.0) for cx in cuts for d in (-40.0, 0.5, 40.0)]
    cells = detect_cells(src, _NoTileIndexDetector(centres, 0.0), cfg, mpp=0.1)
    assert match_centres([(c.x, c.y) for c in cells], centres, radius=5.0) == (len(centres), 0, 0)
