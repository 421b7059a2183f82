"""A microscope field (PNG, JPEG, BMP, small TIFF) held in memory as a single-level source."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from wsi_screen.errors import InputError
from wsi_screen.sources.base import pad_read
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
        rgb = to_rgb8(pixels, where=where)
        if rgb.shape[0] == 0 or rgb.shape[1] == 0:
            msg = f"{where}: image has zero size ({rgb.shape[1]} x {rgb.shape[0]})"
            raise InputError(msg)
        self.pixels = rgb
        self.source_id = source_id
        self.path = path
        self.mpp = mpp

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
        return pad_read(self.pixels, int(x), int(y), int(width), int(height))

    def thumbnail(self, max_side: int) -> NDArray[np.uint8]:
        """Downsampled overview."""
        w, h = self.dimensions
        f = min(1.0, max_side / max(w, h))
        size = (max(1, math.floor(w * f)), max(1, math.floor(h * f)))
        return np.asarray(cv2.resize(self.pixels, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> FieldSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_image_file(path: Path) -> tuple[NDArray[np.generic], float | None]:
    """Decode a PNG/JPEG/BMP/TIFF file fully, failing clearly on truncated or corrupt data.

    Pillow is used because it detects truncation (opencv silently returns a grey-filled image)
    and keeps 16-bit, grayscale and alpha for :func:`to_rgb8` to convert deliberately.

    Returns:
        The decoded array and the pixel size in microns when the file records one (DPI-based
        resolutions are ignored: they describe print size, not the specimen).
    """
    from PIL import Image
    from PIL import UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.load()
            im: Image.Image = opened
            if im.mode == "P":
                im = im.convert("RGBA")  # palette to explicit channels
            elif im.mode == "CMYK":
                im = im.convert("RGB")
            arr = np.asarray(im)
    except (UnidentifiedImageError, ImportError) as e:
        # ImportError: ultralytics, once imported, wraps Image.open and tries optional format
        # plug-ins on unidentified files; either way the file is not an image we can read.
        msg = f"{path}: not an image file (or a format wsi-screen cannot read)"
        raise InputError(msg) from e
    except Image.DecompressionBombError as e:
        msg = f"{path}: image too large to read as a field; convert it to a pyramidal TIFF ({e})"
        raise InputError(msg) from e
    except (OSError, SyntaxError, ValueError) as e:
        msg = f"{path}: corrupt or truncated image ({e})"
        raise InputError(msg) from e
    return arr, None
