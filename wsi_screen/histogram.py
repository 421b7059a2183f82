"""Exact percentiles of uint8 images from their histograms.

``np.percentile`` sorts (partitions) every value; a uint8 channel has only 256 of them, so its
histogram gives the same order statistics in a fraction of the time (0.47 ms against 20 ms
for the glass colour of a 1024 px thumbnail, ``benchmarks/micro_ops.py``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["channel_percentiles"]

_FLOAT32_EXACT = 2**24  # cv2.calcHist counts in float32: exact below this many pixels


def channel_percentiles(pixels: NDArray[np.uint8], q: float) -> NDArray[np.float64]:
    """The ``q``-th percentile of each channel of an H x W x C uint8 image, as ``np.percentile``.

    Same value as ``np.percentile(pixels.reshape(-1, C), q, axis=0)`` (its default ``linear``
    method, interpolation included).

    Example:
        >>> img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
        >>> float(channel_percentiles(img, 50)[0]), float(np.percentile(img.reshape(-1), 50))
        (127.5, 127.5)
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.size == 0:
        msg = (
            f"channel_percentiles takes a non-empty H x W x C uint8 image, got {pixels.dtype} {pixels.shape}"
        )
        raise ValueError(msg)
    if not 0.0 <= q <= 100.0:
        msg = f"percentile must be in [0, 100], got {q}"
        raise ValueError(msg)
    n = pixels.shape[0] * pixels.shape[1]
    pos = q / 100.0 * (n - 1)
    lo = math.floor(pos)
    hi, t = min(lo + 1, n - 1), pos - lo
    out = np.empty(pixels.shape[2], np.float64)
    img = np.ascontiguousarray(pixels)
    for c in range(pixels.shape[2]):
        if n < _FLOAT32_EXACT:
            counts = cv2.calcHist([img], [c], None, [256], [0, 256]).ravel().astype(np.int64)
        else:
            counts = np.bincount(img[:, :, c].ravel(), minlength=256)
        cum = np.cumsum(counts)
        a = float(np.searchsorted(cum, lo, side="right"))  # value of order statistic `lo`
        b = float(np.searchsorted(cum, hi, side="right"))
        out[c] = b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t  # numpy's _lerp
    return out
