"""JPEG encoding of RGB images (viewer tiles, report crops, thumbnails), in one place.

OpenCV encodes BGR. Swapping the channels with ``cv2.cvtColor`` takes about 0.4 ms for a
2452 x 2056 field against about 17 ms for NumPy's ``ascontiguousarray(rgb[:, :, ::-1])`` (a
strided element-by-element copy; ``benchmarks/micro_ops.py``), about a tenth of a field's report stage in
cProfile (``benchmarks/profile_fields.py``).
"""

from __future__ import annotations

import base64

import cv2
import numpy as np
from numpy.typing import NDArray

from wsi_screen.errors import WsiScreenError

__all__ = ["encode_jpeg", "jpeg_data_uri", "rgb_to_bgr"]


def rgb_to_bgr(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """A BGR copy of an H x W x 3 uint8 RGB image (rows may be strided, as a slice of a larger image)."""
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)


def encode_jpeg(rgb: NDArray[np.uint8], quality: int, *, what: str = "image") -> bytes:
    """JPEG bytes of an RGB uint8 image.

    Raises:
        WsiScreenError: OpenCV could not encode it (the message names ``what``).

    Example:
        >>> encode_jpeg(np.zeros((8, 8, 3), np.uint8), 90).startswith(bytes([0xFF, 0xD8]))  # JPEG SOI
        True
    """
    ok, buf = cv2.imencode(".jpg", rgb_to_bgr(rgb), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        msg = f"JPEG encoding of {what} failed"
        raise WsiScreenError(msg)
    return buf.tobytes()


def jpeg_data_uri(rgb: NDArray[np.uint8], quality: int, *, what: str = "a report image") -> str:
    """``data:image/jpeg;base64,...`` of an RGB uint8 image (for self-contained HTML)."""
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(rgb, quality, what=what)).decode("ascii")
