"""The reader is picked by what the file is; OpenSlide reads as a second reader, bounded like the others."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from wsi_screen.deadline import InputTimeoutError
from wsi_screen.deadline import within
from wsi_screen.errors import InputError
from wsi_screen.errors import UnsupportedInputError
from wsi_screen.limits import InputTooLargeError
from wsi_screen.limits import LimitsConfig
from wsi_screen.sources import FieldSource
from wsi_screen.sources import SlideSource
from wsi_screen.sources import open_source
from wsi_screen.sources import resolve_mpp


def _image(h: int = 1100, w: int = 1000) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def write_flat_pyramid(path: Path, img: np.ndarray, *, mpp: float, levels: int = 3, tile: int = 256) -> Path:
    """A pyramid with every level in its own top-level directory: OpenSlide's generic-TIFF layout."""
    with tifffile.TiffWriter(path) as tif:
        level = img
        for i in range(levels):
            f = img.shape[1] / level.shape[1]
            res = 1e4 / (mpp * f)
            tif.write(level, tile=(tile, tile), photometric="rgb", compression="zlib",
                      resolution=(res, res), resolutionunit="CENTIMETER", subfiletype=1 if i else 0)  # fmt: skip
            level = cv2.resize(
                level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA
            )
    return path


openslide = pytest.importorskip("openslide", reason="the [openslide] extra is not installed")


def test_openslide_reads_a_generic_tiff_pyramid(tmp_path: Path) -> None:
    from wsi_screen.sources.openslide_source import OpenSlideSource

    img = _image()
    path = write_flat_pyramid(tmp_path / "p.tiff", img, mpp=0.25)
    with open_source(path, reader="openslide") as src:
        assert isinstance(src, OpenSlideSource) and src.vendor == "generic-tiff"
        assert src.reader.startswith("openslide 4.")
        assert src.dimensions == (1000, 1100) and len(src.level_downsamples) == 3
        np.testing.assert_array_equal(src.read_region(10, 20, 300, 200), img[20:220, 10:310])
        assert src.read_region(0, 0, 100, 100, level=2).shape == (100, 100, 3)
        edge = src.read_region(990, 1090, 20, 20)
        assert (edge[10:] == 255).all() and (edge[:, 10:] == 255).all()
        assert max(src.thumbnail(128).shape[:2]) == 128
        resolved = resolve_mpp(src, user_mpp=None, model_mpp=0.0862)
    assert resolved.mpp == pytest.approx(0.25) and resolved.origin == "openslide.mpp-x/y (generic-tiff)"
    assert resolved.warning is None  # the resolution tags agree


def test_openslide_declared_geometry_is_capped(tmp_path: Path) -> None:
    path = write_flat_pyramid(tmp_path / "p.tiff", _image(), mpp=0.25, levels=1)
    with pytest.raises(InputTooLargeError, match="max_slide_pixels"):
        open_source(path, reader="openslide", limits=LimitsConfig(max_slide_pixels=1e6))


def test_openslide_a_damaged_tile_fails_that_read_only(tmp_path: Path) -> None:
    path = write_flat_pyramid(tmp_path / "p.tiff", _image(), mpp=0.25, levels=1)
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    with path.open("r+b") as f:  # the first tile's deflate stream becomes noise
        f.seek(offset)
        f.write(bytes(np.random.default_rng(1).integers(0, 255, count, dtype=np.uint8)))
    with open_source(path, reader="openslide") as src:
        with pytest.raises(InputError, match="cannot read region"):
            src.read_region(0, 0, 64, 64)
        assert src.read_region(512, 512, 64, 64).std() > 0  # opened again: the next read works


def test_openslide_reads_stop_at_the_time_limit(tmp_path: Path) -> None:
    path = write_flat_pyramid(tmp_path / "p.tiff", _image(), mpp=0.25, levels=1)
    with open_source(path, reader="openslide") as src:

        def slow() -> None:
            time.sleep(0.3)
            src.read_region(0, 0, 64, 64)

        with pytest.raises(InputTimeoutError):
            within(0.1, "p", slow)


def test_the_reader_is_picked_by_content_not_by_name(tmp_path: Path) -> None:
    img = _image(600, 500)
    tiff = write_flat_pyramid(tmp_path / "scan.bin", img, mpp=0.25, levels=2)  # a TIFF without a TIFF name
    with open_source(tiff) as src:
        assert isinstance(src, SlideSource) and src.reader.startswith("tiffslide ")
    png = tmp_path / "field.tif"
    cv2.imwrite(str(png.with_suffix(".png")), img)
    png.write_bytes(png.with_suffix(".png").read_bytes())  # a PNG named .tif
    with open_source(png) as src:
        assert isinstance(src, FieldSource) and src.reader.startswith("pillow ")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedInputError, match="notes.txt"):
        open_source(tmp_path / "notes.txt")


def test_a_forced_reader_that_cannot_read_the_file_says_so(tmp_path: Path) -> None:
    png = tmp_path / "f.png"
    cv2.imwrite(str(png), _image(64, 64))
    with pytest.raises(UnsupportedInputError, match="not a format OpenSlide reads"):
        open_source(png, reader="openslide")
    with pytest.raises(InputError, match="f.png"):
        open_source(png, reader="dicom")
    with pytest.raises(UnsupportedInputError, match="unknown reader 'bioformats'"):
        open_source(png, reader="bioformats")


def test_an_mrxs_data_folder_is_read_only_where_it_lies(tmp_path: Path) -> None:
    slide = tmp_path / "s.mrxs"
    slide.write_bytes(b"\xff\xd8\xff\xe0 not really a mirax slide")
    with pytest.raises(InputError, match="needs its data folder s/"):
        open_source(slide)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "Slidedat.ini").symlink_to(tmp_path / "elsewhere.ini")
    with pytest.raises(InputError, match="symbolic links"):
        open_source(slide, reader="openslide")
