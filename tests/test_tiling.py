from __future__ import annotations

import numpy as np
import pytest

from wsi_screen.config import TilingConfig
from wsi_screen.errors import ConfigError
from wsi_screen.sources import FieldSource
from wsi_screen.tiling import iter_tiles
from wsi_screen.tiling import plan_tiles


@pytest.mark.parametrize(("w", "h"), [(2452, 2056), (300, 200), (5000, 777), (1024, 1024)])
def test_cores_partition_the_image(w: int, h: int) -> None:
    grid = plan_tiles((w, h), TilingConfig(tile_size_px=1024, overlap_um=20.0), mpp=0.1)
    owner = np.zeros((h, w), np.int32)
    for j in range(len(grid.ys)):
        for i in range(len(grid.xs)):
            owner[grid.y_cuts[j] : grid.y_cuts[j + 1], grid.x_cuts[i] : grid.x_cuts[i + 1]] += 1
            # the core keeps half the overlap away from every interior tile edge
            x0, x1 = grid.xs[i], grid.xs[i] + grid.extent
            if i > 0:
                assert grid.x_cuts[i] - x0 >= 100
            if i < len(grid.xs) - 1:
                assert x1 - grid.x_cuts[i + 1] >= 100
    assert (owner == 1).all()


def test_overlap_too_large_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"tiling.overlap_um"):
        plan_tiles((4000, 4000), TilingConfig(tile_size_px=256, overlap_um=30.0), mpp=0.0862)


def test_tiles_carry_pixels_core_and_scale() -> None:
    img = np.random.default_rng(0).integers(0, 255, (700, 900, 3), dtype=np.uint8)
    src = FieldSource(img, source_id="t")
    tiles = list(iter_tiles(src, TilingConfig(tile_size_px=400, overlap_um=10.0), mpp=0.1))
    assert len(tiles) > 1
    for t in tiles:
        assert t.pixels.shape == (400, 400, 3)
        np.testing.assert_array_equal(t.pixels[:10, :10], src.read_region(t.x, t.y, 10, 10))
        assert t.scale == 1.0


def test_tiles_resampled_to_target_mpp() -> None:
    img = np.full((1000, 1000, 3), 200, np.uint8)
    src = FieldSource(img, source_id="t")
    tiles = list(iter_tiles(src, TilingConfig(tile_size_px=256, overlap_um=10.0), mpp=0.1, target_mpp=0.4))
    assert all(t.pixels.shape == (256, 256, 3) for t in tiles)
    assert tiles[0].scale == pytest.approx(4.0)
    assert tiles[0].mpp == pytest.approx(0.4)
