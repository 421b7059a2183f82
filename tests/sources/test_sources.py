from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from _synthetic import write_pyramidal_tiff

from wsi_screen.errors import InputError
from wsi_screen.errors import UnsupportedInputError
from wsi_screen.sources import SlideSource
from wsi_screen.sources import input_stem
from wsi_screen.sources import open_source
from wsi_screen.sources import resolve_mpp

RGB = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_lossless_fields_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"f{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, RGB, photometric="rgb")
    else:
        cv2.imwrite(str(path), RGB[:, :, ::-1])
    with open_source(path) as src:
        assert src.dimensions == (160, 120)
        np.testing.assert_array_equal(src.read_region(0, 0, 160, 120), RGB)


def test_jpeg_field(tmp_path: Path) -> None:
    smooth = np.zeros((120, 160, 3), np.uint8)
    smooth[..., 0] = np.linspace(0, 255, 160, dtype=np.uint8)[None, :]
    smooth[..., 2] = 180
    path = tmp_path / "f.jpg"
    cv2.imwrite(str(path), smooth[:, :, ::-1])
    with open_source(path) as src:
        assert np.abs(src.read_region(0, 0, 160, 120).astype(int) - smooth).mean() < 3


def test_grayscale_rgba_and_16bit_are_converted(tmp_path: Path) -> None:
    gray = tmp_path / "g.png"
    cv2.imwrite(str(gray), RGB[:, :, 0])
    rgba = tmp_path / "a.png"
    alpha = np.zeros((120, 160, 1), np.uint8)
    alpha[:60] = 255
    cv2.imwrite(str(rgba), np.dstack([RGB[:, :, ::-1], alpha]))
    deep = tmp_path / "d.png"
    cv2.imwrite(str(deep), RGB[:, :, ::-1].astype(np.uint16) * 257)
    with open_source(gray) as src:
        px = src.read_region(0, 0, 160, 120)
        np.testing.assert_array_equal(px[..., 0], px[..., 2])
    with open_source(rgba) as src:
        px = src.read_region(0, 0, 160, 120)
        np.testing.assert_array_equal(px[:60], RGB[:60])
        assert (px[60:] == 255).all()  # transparent composited onto white
    with open_source(deep) as src:
        np.testing.assert_array_equal(src.read_region(0, 0, 160, 120), RGB)


def test_read_region_pads_with_white(tmp_path: Path) -> None:
    path = tmp_path / "f.png"
    cv2.imwrite(str(path), RGB[:, :, ::-1])
    with open_source(path) as src:
        px = src.read_region(-10, -5, 30, 20)
        assert (px[:5] == 255).all() and (px[:, :10] == 255).all()
        np.testing.assert_array_equal(px[5:, 10:], RGB[:15, :20])


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "good.png"), RGB)
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(tmp_path / "good.jpg"), RGB)
    jdata = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(jdata[: len(jdata) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.tif").write_text("not a tiff")
    (tmp_path / "text.jpg").write_text("not a jpeg")
    (tmp_path / "notes.txt").write_text("hello")
    cases = {
        "trunc.png": "truncated",
        "trunc.jpg": "truncated",
        "empty.png": "empty",
        "text.tif": "cannot open",
        "text.jpg": "not an image",
        "missing.png": "no such file",
    }
    for name, words in cases.items():
        with pytest.raises(InputError, match=words) as info:
            open_source(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(UnsupportedInputError, match="notes.txt"):
        open_source(tmp_path / "notes.txt")


def test_pyramidal_tiff_reads_levels_and_mpp(tmp_path: Path) -> None:
    img = np.random.default_rng(1).integers(0, 255, (3000, 2900, 3), dtype=np.uint8)
    path = write_pyramidal_tiff(tmp_path / "s.ome.tiff", img, mpp=0.25, levels=3)
    src = open_source(path)
    assert isinstance(src, SlideSource)
    assert src.source_id == "s"
    assert src.dimensions == (2900, 3000)
    assert src.mpp == pytest.approx(0.25, rel=1e-3)
    assert len(src.level_downsamples) == 3
    np.testing.assert_array_equal(src.read_region(100, 200, 64, 32), img[200:232, 100:164])
    edge = src.read_region(2890, 2990, 20, 20)
    assert (edge[10:] == 255).all() and (edge[:, 10:] == 255).all()
    np.testing.assert_array_equal(edge[:10, :10], img[2990:, 2890:])
    low = src.read_region(0, 0, 100, 100, level=1)
    assert low.shape == (100, 100, 3)
    assert max(src.thumbnail(256).shape[:2]) <= 256
    src.close()


def test_slide_thumbnail_in_blocks_matches_whole_image(tmp_path: Path) -> None:
    # a single-level slide: the overview is built block by block, never from the whole level
    yy, xx = np.mgrid[0:700, 0:900]
    img = np.stack([(xx * 255 // 900), (yy * 255 // 700), ((xx + yy) % 256)], axis=-1).astype(np.uint8)
    path = write_pyramidal_tiff(tmp_path / "flat.tiff", img, mpp=0.3, levels=1)
    with SlideSource(path) as src:
        whole = src.thumbnail(300, block=10_000)
        blocks = src.thumbnail(300, block=128)
    assert whole.shape == blocks.shape == (233, 300, 3)
    expected = cv2.resize(img, (300, 233), interpolation=cv2.INTER_AREA)
    assert np.abs(whole.astype(int) - expected).mean() < 1
    # block seams shift by under a pixel: the smooth ramps stay close to the one-piece resize
    assert np.abs(blocks[..., :2].astype(int) - expected[..., :2]).mean() < 2
    assert not (blocks == 255).all(axis=-1).any(), "no unfilled (padding) pixels between blocks"


def test_resolve_mpp_order(tmp_path: Path) -> None:
    img = np.full((300, 300, 3), 200, np.uint8)
    path = write_pyramidal_tiff(tmp_path / "s.tiff", img, mpp=0.3, levels=1)
    with open_source(path) as src:
        assert resolve_mpp(src, user_mpp=None, model_mpp=0.0862).source == "file"
        r = resolve_mpp(src, user_mpp=0.5, model_mpp=0.0862)
        assert r.mpp == pytest.approx(0.3, rel=1e-3) and r.warning
    cv2.imwrite(str(tmp_path / "f.png"), img)
    with open_source(tmp_path / "f.png") as src:
        assert resolve_mpp(src, user_mpp=0.5, model_mpp=0.0862).source == "user"
        r = resolve_mpp(src, user_mpp=None, model_mpp=0.0862)
        assert (r.source, r.mpp) == ("model_default", 0.0862) and r.warning


def test_input_stem() -> None:
    assert input_stem(Path("a/b.ome.tiff")) == "b"
    assert input_stem(Path("x.PNG")) == "x"


def test_12_bit_samples_in_a_16_bit_file_keep_their_brightness(tmp_path: Path) -> None:
    twelve = tmp_path / "camera12.png"
    cv2.imwrite(str(twelve), (RGB[:, :, ::-1].astype(np.uint32) * 4095 // 255).astype(np.uint16))
    with open_source(twelve) as src:
        px = src.read_region(0, 0, 160, 120).astype(int)
    assert np.abs(px - RGB.astype(int)).max() <= 1  # not scaled by 1/257 into near-black


def test_planar_rgb_tiff_field_opens_with_its_pixel_size(tmp_path: Path) -> None:
    import tifffile

    planar = tmp_path / "planar.tif"
    tifffile.imwrite(
        planar,
        np.moveaxis(RGB, -1, 0),
        planarconfig="separate",
        photometric="rgb",
        resolution=(1e4 / 0.1, 1e4 / 0.1),
        resolutionunit="CENTIMETER",
    )
    with open_source(planar) as src:
        assert src.dimensions == (160, 120)
        np.testing.assert_array_equal(src.read_region(0, 0, 160, 120), RGB)
        assert src.mpp == pytest.approx(0.1)
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.stack([RGB, RGB]))  # a 2-image stack is not one field
    with pytest.raises(InputError, match="stack.tif"):
        open_source(stack)


def test_non_square_pixels_are_warned(tmp_path: Path) -> None:
    path = tmp_path / "aniso.tiff"
    img = np.full((600, 800, 3), 230, np.uint8)
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            img,
            tile=(256, 256),
            photometric="rgb",
            resolution=(1e4 / 0.25, 1e4 / 0.30),
            resolutionunit="CENTIMETER",
        )
    with SlideSource(path) as src:
        resolved = resolve_mpp(src, user_mpp=None, model_mpp=0.0862)
    assert resolved.mpp == pytest.approx(0.25) and resolved.source == "file"
    assert resolved.warning is not None and "not square" in resolved.warning


@pytest.mark.parametrize("opaque", [65535, 4095])
def test_12_bit_rgba_keeps_its_brightness_whatever_the_alpha_depth(tmp_path: Path, opaque: int) -> None:
    colour = (RGB.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    alpha = np.full((*RGB.shape[:2], 1), opaque, np.uint16)
    path = tmp_path / "rgba12.png"
    cv2.imwrite(str(path), np.dstack([colour[:, :, ::-1], alpha]))
    with open_source(path) as src:
        px = src.read_region(0, 0, 160, 120).astype(int)
    assert np.abs(px - RGB.astype(int)).max() <= 1  # opaque, and not scaled into near-black
