"""Fields composed of real cell patches: known cells at known places, for measuring the pipeline.

Each 250 px patch is pasted on a pale smear-coloured background on a regular grid, its edges
feathered over 20 px. Composed fields are not photographed fields (no real field holds cells on
a grid); they let the pipeline (detector, crops, classifier) be measured against expert labels.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

BACKGROUND = (236, 230, 236)
"""RGB of the background (a pale, slightly pink glass as in the Matek fields)."""

PER_FIELD = 42
"""Patches per 2452 x 2056 field in the measurements (the default spacing has 48 places)."""


def compose_real_field(
    patches: list[NDArray[np.uint8]],
    width: int = 2452,
    height: int = 2056,
    spacing: int = 300,
    background: tuple[int, int, int] = BACKGROUND,
) -> tuple[NDArray[np.uint8], list[tuple[float, float]]]:
    """Paste 250 px real patches on a grid (feathered edges); return the field and patch centres."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = background
    centres: list[tuple[float, float]] = []
    p = patches[0].shape[0]
    ramp = np.minimum(np.arange(p), np.arange(p)[::-1]).astype(np.float32)
    w2 = np.clip(np.minimum.outer(ramp, ramp) / 20.0, 0, 1)[..., None]
    k = 0
    for y in range(25, height - p, spacing):
        for x in range(25, width - p, spacing):
            if k >= len(patches):
                break
            roi = img[y : y + p, x : x + p].astype(np.float32)
            img[y : y + p, x : x + p] = (patches[k] * w2 + roi * (1 - w2)).astype(np.uint8)
            centres.append((x + p / 2, y + p / 2))
            k += 1
    return img, centres
