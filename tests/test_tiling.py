from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _synthetic import write_pyramidal_tiff

from wsi_screen.config import TilingConfig
from wsi_screen.errors import ConfigError
from wsi_screen.sources import FieldSource
from wsi_screen.sources import open_source
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


def test_an_image_within_one_tile_needs_no_overlap() -> None:
    grid = plan_tiles((300, 200), TilingConfig(tile_size_px=512, overlap_um=30.0), mpp=0.01)
    assert len(grid) == 1 and grid.x_cuts == (0, 300) and grid.y_cuts == (0, 200)


def test_points_found_in_pyramid_level_tiles_map_back_to_level0(tmp_path: Path) -> None:
    """A dark 4 x 4 block found at level 2 (downsample 4) maps to its level-0 centre within a pixel,
    also in tiles whose start is not on the level's pixel grid."""
    mpp = 0.25
    img = np.full((2400, 2400, 3), 230, np.uint8)
    blocks = [(1000, 1000), (1204, 1400), (1808, 300)]
    for bx, by in blocks:
        img[by : by + 4, bx : bx + 4] = 0
    path = write_pyramidal_tiff(tmp_path / "p.tiff", img, mpp=mpp, levels=3)
    cfg = TilingConfig(tile_size_px=256, overlap_um=30.25)  # 121 px overlap: starts off the level grid
    with open_source(path) as src:
        tiles = list(iter_tiles(src, cfg, mpp=mpp, target_mpp=4 * mpp))
    assert any(t.offset != (0.0, 0.0) for t in tiles)
    assert all(t.scale == pytest.approx(4.0) for t in tiles)
    for bx, by in blocks:
        cx, cy = bx + 1.5, by + 1.5
        for t in tiles:
            if not t.owns(cx, cy):
                continue
            gx, gy = round((cx - t.x) / t.scale), round((cy - t.y) / t.scale)  # rough guess
            win = t.pixels[gy - 3 : gy + 4, gx - 3 : gx + 4, 0]
            py, px = np.unravel_index(np.argmin(win), win.shape)
            x, y = t.to_level0(float(gx - 3 + px), float(gy - 3 + py))
            assert abs(x - cx) <= 1.0 and abs(y - cy) <= 1.0, (t.index, x, y, cx, cy)
