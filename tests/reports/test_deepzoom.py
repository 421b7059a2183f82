from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from _synthetic import write_pyramidal_tiff

from wsi_screen.reports.deepzoom import OSD_SCRIPT
from wsi_screen.reports.deepzoom import VIEWER_DIR
from wsi_screen.reports.deepzoom import level_sizes
from wsi_screen.reports.deepzoom import read_deep_zoom
from wsi_screen.reports.deepzoom import render_region
from wsi_screen.reports.deepzoom import tile_boxes
from wsi_screen.reports.deepzoom import write_deep_zoom
from wsi_screen.sources import FieldSource
from wsi_screen.sources import SlideSource


def _pattern(w: int, h: int) -> np.ndarray:
    """A smooth image with a few sharp discs, so misplaced or blurred tiles show up as differences."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), np.full_like(xx, 180)], -1)
    img = img.astype(np.uint8)
    for k in range(12):
        cv2.circle(
            img,
            (int(w * (k + 0.5) / 12), int(h * ((k * 7) % 12 + 0.5) / 12)),
            max(3, w // 60),
            (20, 10, 90),
            -1,
        )
    return img


def _read_level(folder: Path, level: int, size: tuple[int, int], tile: int, overlap: int) -> np.ndarray:
    """Reassemble one DZI level from its tile files (the overlap cropped off again)."""
    w, h = size
    out = np.zeros((h, w, 3), np.uint8)
    for col, row, (x0, y0, x1, y1) in tile_boxes(size, tile, overlap):
        img = cv2.imread(str(folder / "viewer" / "image_files" / str(level) / f"{col}_{row}.jpeg"))[
            :, :, ::-1
        ]
        assert img.shape[:2] == (y1 - y0, x1 - x0)
        gx0, gy0 = col * tile, row * tile
        out[gy0 : min(h, gy0 + tile), gx0 : min(w, gx0 + tile)] = img[
            gy0 - y0 : gy0 - y0 + min(tile, h - gy0), gx0 - x0 : gx0 - x0 + min(tile, w - gx0)
        ]
    return out


def test_level_sizes_halve_down_to_one_pixel():
    sizes = level_sizes(2452, 2056)
    assert sizes[0] == (1, 1) and sizes[-1] == (2452, 2056)
    assert len(sizes) == 13  # ceil(log2(2452)) + 1
    for (w, h), (w2, h2) in zip(sizes, sizes[1:], strict=False):
        assert (w, h) == (-(-w2 // 2), -(-h2 // 2))


def test_field_pyramid_matches_the_image(tmp_path):
    img = _pattern(700, 430)
    dz = write_deep_zoom(FieldSource(img), tmp_path, tile_size=126, overlap=1, quality=95)
    assert (dz.width, dz.height, dz.scale) == (700, 430, 1.0)
    top = _read_level(tmp_path, dz.levels - 1, (700, 430), 126, 1)
    assert np.abs(top.astype(int) - img).mean() < 2.5  # JPEG at quality 95
    half = _read_level(tmp_path, dz.levels - 2, (350, 215), 126, 1)
    ref = cv2.resize(img, (350, 215), interpolation=cv2.INTER_AREA)
    assert np.abs(half.astype(int) - ref).mean() < 3.0
    files = list((tmp_path / VIEWER_DIR / "image_files").rglob("*.jpeg"))
    assert len(files) == dz.tiles
    assert (tmp_path / VIEWER_DIR / OSD_SCRIPT).stat().st_size > 100_000
    assert (
        "BSD" in (tmp_path / VIEWER_DIR / "LICENSE-openseadragon.txt").read_text()
        or "Redistribution" in (tmp_path / VIEWER_DIR / "LICENSE-openseadragon.txt").read_text()
    )
    assert read_deep_zoom(tmp_path) == dz
    dzi = (tmp_path / VIEWER_DIR / "image.dzi").read_text()
    assert 'TileSize="126"' in dzi and 'Width="700"' in dzi
    src = dz.tile_source()["Image"]
    assert (src["Url"], src["Size"]) == ("viewer/image_files/", {"Width": "700", "Height": "430"})


def test_a_field_gets_large_tiles_by_default(tmp_path):
    """Fields up to FIELD_MAX: 1022 px tiles from one in-memory image, the top level its own pixels."""
    from wsi_screen.reports import deepzoom

    img = _pattern(2452, 2056)
    dz = write_deep_zoom(FieldSource(img), tmp_path, quality=95)
    assert (dz.tile_size, dz.levels) == (deepzoom.FIELD_TILE, 13)
    assert dz.tiles == 9 + 4 + 11  # 3 x 3 at the top, 2 x 2 below it, one tile on each smaller level
    assert len(list((tmp_path / VIEWER_DIR / "image_files").rglob("*.jpeg"))) == dz.tiles
    top = _read_level(tmp_path, dz.levels - 1, (2452, 2056), dz.tile_size, dz.overlap)
    assert np.abs(top.astype(int) - img).mean() < 2.5
    half = _read_level(tmp_path, dz.levels - 2, (1226, 1028), dz.tile_size, dz.overlap)
    ref = cv2.resize(img, (1226, 1028), interpolation=cv2.INTER_AREA)
    assert np.abs(half.astype(int) - ref).mean() < 3.0
    assert 'TileSize="1022"' in (tmp_path / VIEWER_DIR / "image.dzi").read_text()


def test_images_beyond_the_field_limit_are_tiled_as_slides(tmp_path, monkeypatch):
    from wsi_screen.reports import deepzoom

    monkeypatch.setattr(deepzoom, "FIELD_MAX", 512)
    img = _pattern(700, 430)
    dz = write_deep_zoom(FieldSource(img), tmp_path, quality=95)
    assert dz.tile_size == deepzoom.DEFAULT_TILE
    assert dz.tiles == sum(len(tile_boxes(s, dz.tile_size, 1)) for s in level_sizes(700, 430)) > dz.levels
    top = _read_level(tmp_path, dz.levels - 1, (700, 430), dz.tile_size, dz.overlap)
    assert np.abs(top.astype(int) - img).mean() < 2.5


def test_slide_tiles_come_from_its_pyramid(tmp_path, monkeypatch):
    from wsi_screen.reports import deepzoom

    monkeypatch.setattr(deepzoom, "_BASE_MAX", 300)  # upper levels tile by tile from the slide's levels
    reads: list[int] = []
    real = SlideSource.read_region

    def spy(self, x, y, w, h, *, level=0):
        reads.append(level)
        return real(self, x, y, w, h, level=level)

    monkeypatch.setattr(SlideSource, "read_region", spy)
    img = _pattern(1800, 1300)
    path = write_pyramidal_tiff(tmp_path / "s.tiff", img, mpp=0.25, levels=3)
    with SlideSource(path) as src:
        dz = write_deep_zoom(src, tmp_path / "out", tile_size=254, overlap=1, quality=95)
    assert {0, 1, 2} <= set(reads)  # each level read at the coarsest slide level fine enough for it
    top = _read_level(tmp_path / "out", dz.levels - 1, (1800, 1300), 254, 1)
    assert np.abs(top.astype(int) - img).mean() < 2.5
    quarter = _read_level(tmp_path / "out", dz.levels - 3, (450, 325), 254, 1)
    ref = cv2.resize(img, (450, 325), interpolation=cv2.INTER_AREA)
    assert np.abs(quarter.astype(int) - ref).mean() < 4.0


def test_max_side_caps_the_top_level(tmp_path):
    img = _pattern(1600, 900)
    dz = write_deep_zoom(FieldSource(img), tmp_path, max_side=400)
    assert (dz.width, dz.height) == (400, 225)
    assert dz.scale == pytest.approx(0.25)
    top = _read_level(tmp_path, dz.levels - 1, (400, 225), dz.tile_size, dz.overlap)
    ref = cv2.resize(img, (400, 225), interpolation=cv2.INTER_AREA)
    assert np.abs(top.astype(int) - ref).mean() < 4.0


def test_render_region_places_sub_pixel_boxes():
    img = _pattern(400, 300)
    src = FieldSource(img)
    out = render_region(src, (100.0, 50.0, 300.0, 250.0), (100, 100))  # 2x shrink of a 200 px square
    ref = cv2.resize(img[50:250, 100:300], (100, 100), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - ref).mean() < 2.0
    same = render_region(src, (10.0, 20.0, 74.0, 84.0), (64, 64))
    assert np.abs(same.astype(int) - img[20:84, 10:74]).max() <= 1


def test_rewrite_replaces_the_folder_whole(tmp_path):
    write_deep_zoom(FieldSource(_pattern(600, 600)), tmp_path)
    stale = tmp_path / VIEWER_DIR / "image_files" / "stale.jpeg"
    stale.write_bytes(b"x")
    dz = write_deep_zoom(FieldSource(_pattern(300, 200)), tmp_path)
    assert not stale.exists()
    assert json.loads((tmp_path / VIEWER_DIR / "viewer.json").read_text())["width"] == dz.width == 300
    assert [p.name for p in tmp_path.iterdir()] == [VIEWER_DIR]  # no temporary folder left


def test_unreadable_viewer_json_names_the_file(tmp_path):
    from wsi_screen.errors import WsiScreenError

    (tmp_path / VIEWER_DIR).mkdir()
    (tmp_path / VIEWER_DIR / "viewer.json").write_text("{")
    with pytest.raises(WsiScreenError, match=r"viewer\.json: not a valid viewer description"):
        read_deep_zoom(tmp_path)
    assert read_deep_zoom(tmp_path / "nothing") is None


def test_empty_glass_is_drawn_from_a_coarser_level(tmp_path, monkeypatch):
    """Tiles over empty glass read the slide's coarse levels only; tiles with cells keep full detail."""
    from wsi_screen.reports import deepzoom

    monkeypatch.setattr(deepzoom, "_BASE_MAX", 300)
    reads: list[tuple[int, int]] = []  # (level, level-0 x) of every read
    real = SlideSource.read_region

    def spy(self, x, y, w, h, *, level=0):
        reads.append((level, x))
        return real(self, x, y, w, h, level=level)

    monkeypatch.setattr(SlideSource, "read_region", spy)
    img = np.full((1300, 1800, 3), 235, np.uint8)  # plain glass right of x = 900
    img[:, :900] = _pattern(900, 1300)
    path = write_pyramidal_tiff(tmp_path / "s.tiff", img, mpp=0.25, levels=3)
    with SlideSource(path) as src:
        dz = write_deep_zoom(src, tmp_path / "out", tile_size=254, overlap=1, quality=95,
                             empty=lambda box: box[0] >= 900)  # fmt: skip
    top_reads = [lv for lv, x in reads if x >= 900 and lv == 0]
    assert not top_reads  # empty glass was never read at level 0 ...
    assert any(lv == 0 for lv, x in reads if x < 900)  # ... the stained half was
    top = _read_level(tmp_path / "out", dz.levels - 1, (1800, 1300), 254, 1)
    assert np.abs(top.astype(int) - img).mean() < 2.5  # and the glass looks the same
