"""A microscope field (PNG, JPEG, BMP, small TIFF) held in memory as a single-level source."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from wsi_screen.deadline import check_deadline
from wsi_screen.errors import InputError
from wsi_screen.limits import InputTooLargeError
from wsi_screen.limits import LimitsConfig
from wsi_screen.limits import check_field_size
from wsi_screen.resample import area_shrink
from wsi_screen.sources.base import pad_read
from wsi_screen.sources.base import significant_bits
from wsi_screen.sources.base import to_rgb8


class FieldSource:
    """An in-memory RGB image behind the :class:`ImageSource` interface.

    Example:
        >>> src = FieldSource(np.full((100, 120, 3), 230, np.uint8), source_id="blank")
        >>> src.dimensions
        (120, 100)
    """

    def __init__(
        self,
        pixels: NDArray[np.generic],
        *,
        source_id: str = "array",
        path: Path | None = None,
        mpp: float | None = None,
    ) -> None:
        where = str(path) if path else source_id
        rgb = to_rgb8(pixels, where=where, bits=significant_bits(pixels))
        if rgb.shape[0] == 0 or rgb.shape[1] == 0:
            msg = f"{where}: image has zero size ({rgb.shape[1]} x {rgb.shape[0]})"
            raise InputError(msg)
        self.pixels = rgb
        self.source_id = source_id
        self.path = path
        self.mpp = mpp
        self.mpp_y: float | None = None
        self.mpp_origin: str | None = None
        """Which metadata the pixel size came from; None without one."""
        self.mpp_warnings: tuple[str, ...] = ()
        self.reader = ""
        """The library that decoded the image and its version (``"pillow 11.3.0"``); report.json's ``input.reader``."""

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """A field has one level."""
        return (1.0,)

    def read_region(self, x: int, y: int, width: int, height: int, *, level: int = 0) -> NDArray[np.uint8]:
        """Read a window, padded with white outside the image."""
        if level != 0:
            msg = f"{self.source_id}: a field has only level 0, got level={level}"
            raise InputError(msg)
        check_deadline()  # a checkpoint of the per-input time limit, as for a slide's reads
        return pad_read(self.pixels, int(x), int(y), int(width), int(height))

    def thumbnail(self, max_side: int) -> NDArray[np.uint8]:
        """Downsampled overview."""
        w, h = self.dimensions
        f = min(1.0, max_side / max(w, h))
        size = (max(1, math.floor(w * f)), max(1, math.floor(h * f)))
        return area_shrink(self.pixels, size)[0]

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> FieldSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_image_file(
    path: Path, *, limits: LimitsConfig | None = None
) -> tuple[NDArray[np.generic], float | None]:
    """Decode a PNG/JPEG/BMP/TIFF file fully, failing clearly on truncated or corrupt data.

    Pillow is used because it detects truncation (opencv silently returns a grey-filled image)
    and keeps 16-bit, grayscale and alpha for :func:`to_rgb8` to convert deliberately. The size
    the header declares is checked against ``limits.max_field_pixels`` before any pixel is
    decoded (a 700-byte JPEG can declare 12,000 x 12,000 px), and Pillow's decompression-bomb
    warning is an error, in every thread: either way a one-line :class:`InputError`.

    Returns:
        The decoded array and the pixel size in microns when the file records one (DPI-based
        resolutions are ignored: they describe print size, not the specimen).
    """
    from PIL import Image
    from PIL import UnidentifiedImageError

    # process-wide and idempotent (catch_warnings is not thread-safe; fields are read on workers)
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    try:
        with Image.open(path) as opened:
            check_field_size(path, opened.size, limits or LimitsConfig())
            opened.load()
            im: Image.Image = opened
            if im.mode == "P":
                im = im.convert("RGBA")  # palette to explicit channels
            elif im.mode == "CMYK":
                im = im.convert("RGB")
            arr = np.asarray(im)
            if opened.format == "PNG" and im.mode in ("RGB", "RGBA") and _png_bit_depth(path) == 16:
                arr = _read_16bit_png(path, arr)  # Pillow keeps only the high byte of 16-bit RGB
    except (UnidentifiedImageError, ImportError) as e:
        # ImportError: ultralytics, once imported, wraps Image.open and tries optional format
        # plug-ins on unidentified files; either way the file is not an image we can read.
        msg = f"{path}: not an image file (or a format wsi-screen cannot read)"
        raise InputError(msg) from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        msg = f"{path}: image too large to read as a field ({e}); refused before decoding"
        raise InputTooLargeError(msg) from e
    except (OSError, SyntaxError, ValueError) as e:
        msg = f"{path}: corrupt or truncated image ({e})"
        raise InputError(msg) from e
    return arr, None


def _png_bit_depth(path: Path) -> int:
    """Bit depth from the PNG header (IHDR byte 24)."""
    with path.open("rb") as f:
        head = f.read(25)
    return head[24] if len(head) == 25 else 8


def _read_16bit_png(path: Path, decoded: NDArray[np.generic]) -> NDArray[np.generic]:
    """Re-read a 16-bit RGB(A) PNG that Pillow has verified, keeping all 16 bits (RGB order)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.shape[:2] != decoded.shape[:2]:
        return decoded
    order = [2, 1, 0, 3][: raw.shape[2]] if raw.ndim == 3 else None
    return np.ascontiguousarray(raw[..., order]) if order else raw


_UM_PER_UNIT = {2: 25_400.0, 3: 10_000.0, 4: 1_000.0, 5: 1.0}  # TIFF ResolutionUnit: inch, cm, mm, um


def _check_field_size(path: Path, axes: str, shape: tuple[int, ...], max_pixels: int) -> None:
    """Refuse, before decoding, a TIFF series that is not one 2-D image of at most ``max_pixels``."""
    if "Y" not in axes or "X" not in axes or shape[axes.index("Y")] * shape[axes.index("X")] > max_pixels:
        msg = f"{path}: TIFF image {shape} ({axes}) is not a field that fits in memory"
        raise InputError(msg)
    if axes not in _FIELD_AXES or math.prod(shape) > 4 * max_pixels:  # a stack of planes, or many samples
        msg = f"{path}: TIFF layout {axes} {shape} is not a single 2-D image"
        raise InputError(msg)


_FIELD_AXES = ("YX", "YXS", "YXC", "SYX", "CYX")


def read_tiff_field(path: Path, *, max_pixels: int) -> tuple[NDArray[np.generic], float | None]:
    """Decode a single-image TIFF that tiffslide does not open (planar RGB, say) with tifffile.

    Returns:
        The image as (H, W[, C]) and the pixel size in microns from the resolution tags, if any.

    Raises:
        InputError: unreadable, too large for memory, or a layout other than one 2-D image.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            _check_field_size(path, axes, shape, max_pixels)
            arr = series.asarray()
            page = tif.pages.first
            unit = int(page.tags["ResolutionUnit"].value) if "ResolutionUnit" in page.tags else 2
            xres = page.tags["XResolution"].value if "XResolution" in page.tags else None
    except InputError:
        raise
    except Exception as e:  # tifffile raises many types on corrupt data
        msg = f"{path}: corrupt or unsupported TIFF ({type(e).__name__}: {e})"
        raise InputError(msg) from e
    if axes in ("SYX", "CYX"):  # planar configuration: channels first
        arr = np.moveaxis(arr, 0, -1)
    mpp = None
    if xres and unit in _UM_PER_UNIT and xres[0] > 0 and xres[1] > 0:
        mpp = _UM_PER_UNIT[unit] * xres[1] / xres[0]
    return arr, mpp
