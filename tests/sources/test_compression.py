"""Every tile codec scanners write decodes (imagecodecs), or the slide fails naming the codec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from wsi_screen.errors import UnsupportedInputError
from wsi_screen.sources import SlideSource
from wsi_screen.sources import open_source

CODECS = [  # (what tifffile writes, the TIFF compression number it must carry, lossless)
    ("lzw", 5, True),
    ("zlib", 8, True),  # deflate
    ("webp", 50001, False),
    ("zstd", 50000, True),
    (33003, 33003, False),  # Aperio JPEG 2000, YCbCr
    (33005, 33005, False),  # Aperio JPEG 2000, RGB
    ("jpeg2000", 34712, False),
    ("jpegxr", 34934, False),
]


def _smooth(h: int = 600, w: int = 520) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.dstack([(xx * 0.4) % 256, (yy * 0.3) % 256, ((xx + yy) * 0.2) % 256]).astype(np.uint8)


def _write(path: Path, img: np.ndarray, compression: object) -> Path:
    """Two levels, tiled: a slide tiffslide reads lazily (not a field held in memory)."""
    try:
        with tifffile.TiffWriter(path) as tif:
            tif.write(img, tile=(256, 256), photometric="rgb", compression=compression, subifds=1)
            tif.write(
                img[::2, ::2], tile=(256, 256), photometric="rgb", compression=compression, subfiletype=1
            )
    except Exception as e:  # noqa: BLE001 - an encoder this imagecodecs build lacks
        pytest.skip(f"tifffile cannot write {compression} here ({type(e).__name__}: {e})")
    return path


@pytest.mark.parametrize(("compression", "code", "lossless"), CODECS, ids=[str(c[0]) for c in CODECS])
def test_tiles_of_each_codec_decode(tmp_path: Path, compression: object, code: int, lossless: bool) -> None:
    img = _smooth()
    path = _write(tmp_path / "s.tiff", img, compression)
    with tifffile.TiffFile(path) as tif:
        assert int(tif.pages[0].compression) == code
    with open_source(path) as src:
        assert isinstance(src, SlideSource)
        got = src.read_region(100, 200, 300, 250).astype(int)
    err = np.abs(got - img[200:450, 100:400]).mean()
    assert err == 0 if lossless else err < 4


def test_a_codec_no_library_here_decodes_fails_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.tiff", _smooth(), "zlib")
    with tifffile.TiffFile(path) as tif:
        offsets = [p.tags["Compression"].valueoffset for p in (tif.pages[0], *tif.pages[0].pages)]
    with path.open("r+b") as f:
        for off in offsets:  # relabel the tiles as SGILOG, which neither tifffile nor imagecodecs decodes
            f.seek(off)
            f.write((34676).to_bytes(2, "little"))
    with pytest.raises(UnsupportedInputError, match=r"compressed with SGILOG \(TIFF compression 34676\)"):
        open_source(path)
