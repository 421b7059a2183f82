"""Area-averaged shrinking that takes OpenCV's fast path: whole factors first, then the rest.

``cv2.resize(..., INTER_AREA)`` is about ten times faster for a whole-number factor than for any
other (0.7 ms against 10 ms for a 2452 x 2056 field on this CPU), so a large shrink is done in two
steps: by the largest whole factor that still leaves the target size, on the image cropped to a
multiple of it (at most ``factor - 1`` pixels of its right and bottom edges go), then bilinearly
by what is left (less than 2x) on the small image.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray


def area_shrink(
    pixels: NDArray[np.uint8], size: tuple[int, int]
) -> tuple[NDArray[np.uint8], tuple[int, int]]:
    """Shrink ``pixels`` to ``size`` (width, height) by area averaging.

    Returns:
        The shrunk image and the (width, height) of ``pixels`` it covers: its top-left part, a
        few pixels short of the whole when the image is not a multiple of the whole factor.
        Output pixel ``(i, j)`` averages the covered pixels ``[i * cw / w, (i + 1) * cw / w)``.

    Example:
        >>> img = np.zeros((2056, 2452, 3), np.uint8)
        >>> small, covered = area_shrink(img, (700, 587))
        >>> small.shape, covered
        ((587, 700, 3), (2451, 2055))
    """
    h, w = pixels.shape[:2]
    tw, th = max(1, size[0]), max(1, size[1])
    k = min(w // tw, h // th)
    if k >= 2:
        pixels = pixels[: (h // k) * k, : (w // k) * k]
        h, w = pixels.shape[:2]
        pixels = np.asarray(
            cv2.resize(pixels, (w // k, h // k), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
    if (pixels.shape[1], pixels.shape[0]) != (tw, th):  # less than 2x left: bilinear is enough
        pixels = np.asarray(cv2.resize(pixels, (tw, th), interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
    return pixels, (w, h)
