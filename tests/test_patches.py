from __future__ import annotations

import cv2
import numpy as np

from wsi_screen.patches import crop_patch
from wsi_screen.patches import crop_patches
from wsi_screen.patches import iter_patch_batches
from wsi_screen.sources import FieldSource
from wsi_screen.types import Cell


def cell(x: float, y: float) -> Cell:
    return Cell(0, "s", x, y, (0, 0, 1, 1), 1.0, "test")


def test_patches_are_fixed_size_at_borders() -> None:
    src = FieldSource(np.full((400, 500, 3), 100, np.uint8), source_id="s")
    for x, y in [(0, 0), (499, 399), (250, 5), (-3, 200)]:
        p = crop_patch(src, cell(x, y), patch_size_px=250, source_mpp=0.1, model_mpp=0.1)
        assert p.shape == (250, 250, 3)
    p = crop_patch(src, cell(0, 0), patch_size_px=250, source_mpp=0.1, model_mpp=0.1)
    assert (p[:120, :120] == 255).all() and (p[130:, 130:] == 100).all()


def test_patch_covers_the_same_physical_area_at_another_scale() -> None:
    rng = np.random.default_rng(0)
    fine = cv2.resize(
        rng.integers(0, 255, (25, 25, 3), dtype=np.uint8), (1000, 1000), interpolation=cv2.INTER_CUBIC
    )
    coarse = cv2.resize(fine, (500, 500), interpolation=cv2.INTER_AREA)  # same specimen, 2x larger pixels
    a = crop_patch(FieldSource(fine), cell(500, 500), patch_size_px=250, source_mpp=0.1, model_mpp=0.1)
    b = crop_patch(FieldSource(coarse), cell(250, 250), patch_size_px=250, source_mpp=0.2, model_mpp=0.1)
    assert b.shape == a.shape
    same_area = np.abs(a.astype(int) - b.astype(int)).mean()
    wrong = crop_patch(FieldSource(coarse), cell(250, 250), patch_size_px=250, source_mpp=0.1, model_mpp=0.1)
    assert same_area < 4
    assert np.abs(a.astype(int) - wrong.astype(int)).mean() > 4 * same_area


def test_batches_span_sources() -> None:
    s1 = FieldSource(np.zeros((300, 300, 3), np.uint8), source_id="a")
    s2 = FieldSource(np.ones((300, 300, 3), np.uint8), source_id="b")
    items = [(s1, 0.1, cell(10, 10))] * 3 + [(s2, 0.1, cell(20, 20))] * 4
    batches = list(iter_patch_batches(items, patch_size_px=32, model_mpp=0.1, batch_size=5))
    assert [len(b.cells) for b in batches] == [5, 2]
    assert batches[0].pixels.shape == (5, 32, 32, 3)


class CountingSource(FieldSource):
    reads = 0

    def read_region(self, x: int, y: int, width: int, height: int, *, level: int = 0) -> np.ndarray:
        self.reads += 1
        return super().read_region(x, y, width, height, level=level)


def test_shared_window_crops_equal_single_crops_with_fewer_reads() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (900, 1200, 3), dtype=np.uint8)
    # tile 0: a dense cluster (one shared read), incl. a cell at the border; tile 1: a lone cell;
    # tile 2: two cells far apart (mostly empty window: read one by one)
    spots = [(0, 60, 70), (0, 150, 90), (0, 110, 160), (0, 5, 20), (1, 700, 500), (2, 40, 860), (2, 1150, 30)]
    cells = [Cell(i, "s", x, y, (0, 0, 1, 1), 1.0, "test", t) for i, (t, x, y) in enumerate(spots)]
    for source_mpp in (0.1, 0.07):  # same scale, and windows resampled to the model scale
        src = CountingSource(img, source_id="s")
        got = crop_patches(src, cells, patch_size_px=100, source_mpp=source_mpp, model_mpp=0.1)
        assert src.reads == 1 + 1 + 2
        for c, patch in zip(cells, got, strict=True):
            want = crop_patch(src, c, patch_size_px=100, source_mpp=source_mpp, model_mpp=0.1)
            np.testing.assert_array_equal(patch, want)
