"""What a patch goes through before the network sees it, the same in training and at inference.

A bundle names its resize interpolation (``model.json`` ``interpolation``) and an optional
preprocessing (``preprocess``); this module owns both, so the inference path
(:mod:`wsi_screen.classifiers.timm_classifier`) and the training data sets
(:mod:`wsi_screen.training.datasets`) apply one implementation and bundle validation
(:mod:`wsi_screen.classifiers.bundle`) checks against the same names.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

INTERPOLATIONS = {"bilinear": 1, "area": 3, "bicubic": 2, "nearest": 0}
"""Interpolation names a bundle may give, with their OpenCV ``INTER_*`` codes."""

_RESIZE = {k: INTERPOLATIONS[k] for k in ("bilinear", "area", "bicubic")}  # what inference has always used


def resize_patches(
    patches: NDArray[np.uint8], size: int, interpolation: str = "bilinear"
) -> NDArray[np.uint8]:
    """Resize N x H x W x 3 uint8 patches to N x size x size x 3 (no-op when already that size).

    Args:
        patches: uint8 RGB patches.
        size: output side in pixels (the bundle's ``input_size``).
        interpolation: ``bilinear``, ``area`` or ``bicubic``; any other name resizes bilinearly.

    Returns:
        The resized patches (``patches`` itself when they already have that size).
    """
    import cv2

    if patches.shape[1] == size and patches.shape[2] == size:
        return patches
    interp = _RESIZE.get(interpolation, cv2.INTER_LINEAR)
    out = np.empty((patches.shape[0], size, size, 3), dtype=np.uint8)
    for i, p in enumerate(patches):
        out[i] = cv2.resize(p, (size, size), interpolation=interp)
    return out


def shah_preprocess(rgb: np.ndarray, *, h: float = 5.0) -> np.ndarray:
    """Non-local-means denoising followed by a 3x3 sharpening kernel (Shah et al. 2025).

    Args:
        rgb: uint8 HxWx3 patch.
        h: NLM filter strength for luminance and colour.

    Returns:
        uint8 HxWx3 patch of the same size.
    """
    import cv2

    den = cv2.fastNlMeansDenoisingColored(rgb, None, h, h, 7, 21)
    kernel = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float32)
    return cv2.filter2D(den, -1, kernel)
